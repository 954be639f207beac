// The client opens realtime connections with the browser globals EventSource (SSE) and
// WebSocket, which Node 20 lacks: install the npm implementations before the client is used.
import EventSource from "eventsource";
import WebSocket from "ws";

globalThis.EventSource ??= EventSource;
globalThis.WebSocket ??= WebSocket;

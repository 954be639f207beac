"""Thin HTTP handlers: parse the request, call one service, render the answer."""

// Set up before the user's code, in every fresh context. Helpers cross to the server through
// __host(name, argsJSON) and return what it answers (usually {ok, content}); "" means undefined.
// The worker fills in __HELPERS__ (the helper names this run's code can reach), __SECRETS__ and
// __FORMAT__ (format.js as a string, compiled the first time the function logs: most runs never do).
(function (global, names, secrets) {
  "use strict";
  var host = global.__host, hostLog = global.__log, globalEval = global.eval, format = null;
  delete global.__host;
  delete global.__log;
  global.log = function () {
    if (arguments.length === 0) return undefined;
    if (format === null) format = globalEval(__FORMAT__);
    hostLog(format(arguments));
    return undefined;
  };
  function helper(name) {
    return function () {
      var answer = host(name, JSON.stringify(Array.prototype.slice.call(arguments)));
      return answer === "" ? undefined : JSON.parse(answer);
    };
  }
  for (var i = 0; i < names.length; i++) global[names[i]] = helper(names[i]);
  global.secrets = Object.freeze(secrets);
})(globalThis, __HELPERS__, __SECRETS__);

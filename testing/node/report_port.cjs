// Preloaded (`node --require`) into third-party Node servers the tests start with PORT=0
// (server-everything logs the port it was given, not the one it got): prints
// `SWITCHBOARD_TEST_LISTENING <port>` on stderr once each HTTP server listens, so a test learns
// the port the server bound instead of picking one in advance.
"use strict";
const http = require("node:http");
const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (...args) {
  this.once("listening", () => {
    const a = this.address();
    if (a && typeof a === "object") {
      process.stderr.write(`SWITCHBOARD_TEST_LISTENING ${a.port}\n`);
    }
  });
  return listen.apply(this, args);
};

/*
 * agegate-credential.js: ask the person's wallet to prove "over 18" through the browser's
 * Digital Credentials API (OpenID4VP 1.0, protocol openid4vp-v1-unsigned), and fall back to
 * the date-of-birth form where the browser has none.
 *
 * The page never holds an agegate token: the platform's backend calls
 * POST /v1/credential-requests and hands the page `protocol` and `request` from the answer; the
 * page gives them to AgegateCredential.present() with a `relay` callback that posts the
 * wallet's answer ({vp_token}) to the platform's backend, which relays it to
 * POST /v1/credential-requests/{request_id}/response. See docs/age-signals-integration.md.
 *
 *   AgegateCredential.supported([protocol])  -> true when the browser has the API
 *   AgegateCredential.present({protocol, request, relay, fallback})
 *     -> Promise of {outcome: "relayed", result: <what relay resolved to>}
 *                or {outcome: "fallback", reason: "unsupported" | "cancelled" | "failed"}
 *   `fallback` (optional): the date-of-birth form (an element or a selector), shown on fallback,
 *   or a function called with the reason.
 */
(function (global) {
  "use strict";

  var PROTOCOL = "openid4vp-v1-unsigned";

  function supported(protocol) {
    var api = global.DigitalCredential;
    if (typeof api === "undefined" || !global.navigator || !global.navigator.credentials ||
        typeof global.navigator.credentials.get !== "function") {
      return false;
    }
    // Browsers that can say which protocols they carry are asked (DigitalCredential
    // .userAgentAllowsProtocol); the others are taken at their word.
    return typeof api.userAgentAllowsProtocol !== "function" ||
      api.userAgentAllowsProtocol(protocol || PROTOCOL) !== false;
  }

  function showFallback(fallback, reason) {
    if (typeof fallback === "function") {
      fallback(reason);
      return;
    }
    var form = typeof fallback === "string" ? global.document.querySelector(fallback) : fallback;
    if (form) {
      form.hidden = false;
      var first = form.querySelector("input, select, button");
      if (first) first.focus();
    }
  }

  function answerOf(credential) {
    // A DigitalCredential: {protocol, data}; data is the OpenID4VP response ({vp_token}),
    // an object in current browsers and a JSON string in some earlier ones.
    var data = credential && credential.data;
    if (typeof data === "string") data = JSON.parse(data);
    if (!data || typeof data.vp_token !== "object" || data.vp_token === null) {
      throw new Error("The wallet's answer carries no vp_token.");
    }
    return {vp_token: data.vp_token};
  }

  async function present(options) {
    if (!options || !options.request || typeof options.relay !== "function") {
      throw new TypeError("present() needs {protocol, request, relay}.");
    }
    var protocol = options.protocol || PROTOCOL;
    if (!supported(protocol)) {
      showFallback(options.fallback, "unsupported");
      return {outcome: "fallback", reason: "unsupported"};
    }
    var credential;
    try {
      credential = await global.navigator.credentials.get({
        digital: {requests: [{protocol: protocol, data: options.request}]}
      });
    } catch (error) {
      // NotAllowedError: the person declined or closed the wallet; anything else: no wallet
      // could answer. Either way the form is the way on.
      var reason = error && error.name === "NotAllowedError" ? "cancelled" : "failed";
      showFallback(options.fallback, reason);
      return {outcome: "fallback", reason: reason};
    }
    var answer;
    try {
      answer = answerOf(credential);
    } catch (error) {
      showFallback(options.fallback, "failed");
      return {outcome: "fallback", reason: "failed"};
    }
    return {outcome: "relayed", result: await options.relay(answer)};
  }

  global.AgegateCredential = {supported: supported, present: present};
})(window);

// errors.js: the one error type the library throws.
//
// Every error the server sends, REST or WebSocket, has one shape
// (PROTOCOL.md, "Errors"): {"error": {"code", "message"}}. It becomes an
// ApiError with the HTTP status, the code and the message, and with
// Retry-After (seconds) for rate_limited. What never reached the server is
// an ApiError too: code "network" with status 0 when the server cannot be
// reached, "aborted" when the caller gave up, "not_logged_in" when a call
// needs a session and there is none.

/** An error from the server, or from the way to it. */
export class ApiError extends Error {
  /**
   * @param {number} status the HTTP status; 0 when no answer came
   * @param {string} code PROTOCOL.md's code ("not_found", "unauthorized", ...),
   *   "network", "aborted", "not_logged_in", or "http_NNN" for an answer
   *   without an error body
   * @param {string} [message] what happened, in the server's words
   * @param {number} [retryAfter] seconds to wait, from Retry-After (else 0)
   */
  constructor(status, code, message, retryAfter = 0) {
    super(message || code);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }

  /**
   * True when trying the same request again later may work: the server was
   * not reached, was busy, or could not tell the outcome (PROTOCOL.md: a
   * send answered 503 is retried with the same client_msg_id).
   */
  get retryable() {
    return this.code === 'network' ||
      this.code === 'unavailable' || this.code === 'rate_limited' || this.code === 'internal' ||
      [502, 503, 504].includes(this.status);
  }
}

/** PROTOCOL.md's table of codes and their HTTP statuses. */
export const ERROR_STATUS = Object.freeze({
  bad_request: 400, unauthorized: 401, forbidden: 403, not_found: 404, method_not_allowed: 405,
  conflict: 409, too_large: 413, rate_limited: 429, internal: 500, unavailable: 503,
});

/**
 * The ApiError an error object of a WebSocket frame ({code, message})
 * stands for, with the HTTP status its code has over REST.
 */
export function frameError(err) {
  const e = err || {};
  const code = e.code || 'internal';
  return new ApiError(ERROR_STATUS[code] || 500, code, e.message || code);
}

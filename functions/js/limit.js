// One rate limiting charge in one call from wasm (`functions/src/rate_limit.rs`):
// `binding.limit({key})` and its verdict.
//
// Through `Reflect` from Rust, the same charge crossed between wasm and
// JavaScript about ten times (the method looked up and checked, the options
// object built, the key copied, the outcome's `success` read back), on
// every request that reaches a handler.
//
// Resolves to `true` (under the limit) or `false` (over it); rejects when the
// binding has no `limit` method, when the call fails, or when the outcome has
// no boolean `success`: `rate_limit.rs` lets such a request through, logged.
export function chargeLimiter(binding, key) {
  try {
    return binding.limit({ key }).then((outcome) => {
      const success = outcome === null || outcome === undefined ? undefined : outcome.success;
      if (typeof success !== "boolean") {
        throw new Error("the outcome has no boolean `success`");
      }
      return success;
    });
  } catch (error) {
    return Promise.reject(error);
  }
}

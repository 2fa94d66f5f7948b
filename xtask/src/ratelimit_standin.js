// A STAND-IN for Cloudflare's rate limiting binding, for the Worker served by
// bare `workerd` (`cargo xtask bench`), which has no such binding: wrangler
// implements it locally as a wrapped binding around a module like this one.
// As strict as that one: a fixed window of `period` seconds aligned on the
// clock, one counter per key, `success: false` once a key has had `limit`
// requests in the window. Never deployed.
class Ratelimit {
  constructor(env) {
    this.max = env.limit;
    this.period = env.period;
    this.window = 0;
    this.counts = new Map();
  }

  async limit(options) {
    if (typeof options !== "object" || options === null || typeof options.key !== "string") {
      throw new Error("rate limit options must be an object with a string key");
    }
    const window = Math.floor(Date.now() / (this.period * 1000));
    if (window !== this.window) {
      this.window = window;
      this.counts.clear();
    }
    const used = this.counts.get(options.key) ?? 0;
    if (used >= this.max) {
      return { success: false };
    }
    this.counts.set(options.key, used + 1);
    return { success: true };
  }
}

export default function (env) {
  return new Ratelimit(env);
}

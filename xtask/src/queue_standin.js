// A STAND-IN for Cloudflare Queues, for the Worker served by bare `workerd`
// (`cargo xtask bench`, figure 9), which has no queue broker: workerd's
// `queue` binding only turns `send`/`sendBatch` into HTTP requests to a
// service the config names, and this is that service. Never deployed.
//
// What it does, as Cloudflare documents its queues:
// - Producer side: `POST /message` (one body, format in `X-Msg-Fmt`, delay
//   in `X-Msg-Delay-Secs`) and `POST /batch` (`{"messages": [{"body":
//   base64, "contentType", "delaySecs"}]}`), the requests workerd's binding
//   sends; the queue is named by the binding's `props` (`{"queue": name}`).
//   Cloudflare's limits are enforced (100 messages and 256 KB per batch,
//   128 KB per message): over them, 413 and the producer's `send` throws.
// - Consumer side: a batch goes to the consumer when it holds
//   `max_batch_size` messages or its oldest message has waited
//   `max_batch_timeout` seconds; up to `concurrency` batches are with the
//   consumer at once. Delivery is workerd's own: `CONSUMER.queue(name,
//   messages)` on a service binding, which runs the Worker's `queue` handler
//   as a queue event and returns what it decided.
// - Acknowledgement: a message explicitly acked is done; one retried
//   (`message.retry`, or the whole batch by `retryAll` or by a handler that
//   threw) comes back after its delay (the message's, else the batch's, else
//   the consumer's `retry_delay`) with `attempts` one higher; after
//   `max_retries` retries it moves to the `dead_letter_queue` (keeping its
//   id and timestamp), or is dropped, logged, without one. Everything else
//   delivered is acknowledged.
//
// What it does not do: persist anything (messages live in this isolate's
// memory, lost on restart), scale its concurrency with the backlog as
// Cloudflare's consumers do (it is fixed, chosen by the bench), pull
// consumers, delivery delays of a whole queue (`delivery_delay`), or
// per-account limits and metrics beyond the backlog that the producer's
// answer carries.
//
// Bindings: QUEUES (json: queue name → consumer settings, see
// `xtask/src/workerd_serve.rs`), CONSUMER (the Worker's service).

const MAX_BATCH_MESSAGES = 100;
const MAX_BATCH_BYTES = 256_000;
const MAX_MESSAGE_BYTES = 128_000;
const FORMATS = ["text", "json", "bytes", "v8"];
// How often a waiting delivery slot looks again for a full batch or a due
// retry: a batch fills from many producer requests, none of which can wake
// a slot that waits in another request's context.
const POLL_MS = 10;

const queues = new Map();

function queueNamed(env, name) {
  let queue = queues.get(name);
  if (queue === undefined) {
    const settings = env.QUEUES[name];
    if (settings === undefined) {
      return undefined;
    }
    queue = { name, settings, ready: [], delayed: [], slots: 0 };
    queues.set(name, queue);
  }
  return queue;
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function decodeBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) {
    bytes[i] = binary.charCodeAt(i);
  }
  return bytes;
}

function format(value) {
  const fmt = (value ?? "v8").toLowerCase();
  if (!FORMATS.includes(fmt)) {
    throw new HttpError(400, `unknown message format ${value}`);
  }
  return fmt;
}

function delaySecs(value) {
  if (value === undefined || value === null || value === "") {
    return 0;
  }
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 86400) {
    throw new HttpError(400, `message delay ${value} is not 0 to 86400 seconds`);
  }
  return n;
}

function newId() {
  return [...crypto.getRandomValues(new Uint8Array(16))]
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

// The messages of one producer request, checked against the limits.
async function incoming(request) {
  const path = new URL(request.url).pathname;
  if (request.method !== "POST" || (path !== "/message" && path !== "/batch")) {
    throw new HttpError(404, `no such queue operation: ${request.method} ${path}`);
  }
  const headerDelay = delaySecs(request.headers.get("X-Msg-Delay-Secs"));
  if (path === "/message") {
    const bytes = new Uint8Array(await request.arrayBuffer());
    if (bytes.length > MAX_MESSAGE_BYTES) {
      throw new HttpError(413, `message of ${bytes.length} bytes, over ${MAX_MESSAGE_BYTES}`);
    }
    return [{ contentType: format(request.headers.get("X-Msg-Fmt")), bytes, delay: headerDelay }];
  }
  const count = Number(request.headers.get("CF-Queue-Batch-Count") ?? 0);
  const total = Number(request.headers.get("CF-Queue-Batch-Bytes") ?? 0);
  if (count > MAX_BATCH_MESSAGES || total > MAX_BATCH_BYTES) {
    throw new HttpError(413, `batch of ${count} messages and ${total} bytes, over the limits`);
  }
  let body;
  try {
    body = await request.json();
  } catch {
    throw new HttpError(400, "batch body is not JSON");
  }
  if (!Array.isArray(body?.messages)) {
    throw new HttpError(400, "batch body has no messages list");
  }
  return body.messages.map((m) => {
    const bytes = decodeBase64(m.body);
    if (bytes.length > MAX_MESSAGE_BYTES) {
      throw new HttpError(413, `message of ${bytes.length} bytes, over ${MAX_MESSAGE_BYTES}`);
    }
    return {
      contentType: format(m.contentType),
      bytes,
      delay: m.delaySecs === undefined ? headerDelay : delaySecs(m.delaySecs),
    };
  });
}

function metrics(queue) {
  const all = queue.ready.concat(queue.delayed);
  return {
    backlogCount: all.length,
    backlogBytes: all.reduce((sum, m) => sum + m.bytes.length, 0),
    oldestMessageTimestamp: all.reduce((t, m) => (t === 0 ? m.timestamp : Math.min(t, m.timestamp)), 0),
  };
}

function enqueue(queue, message, delay) {
  if (delay > 0) {
    queue.delayed.push({ ...message, visibleAt: Date.now() + delay * 1000 });
  } else {
    queue.ready.push({ ...message, readyAt: Date.now() });
  }
}

// Starts a delivery slot for `queue` in this request's context when it has
// fewer than its concurrency.
function startSlot(queue, env, ctx) {
  if (queue.slots < queue.settings.concurrency && queue.ready.length + queue.delayed.length > 0) {
    queue.slots += 1;
    ctx.waitUntil(slot(queue, env, ctx));
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One delivery at a time until the queue is empty.
async function slot(queue, env, ctx) {
  try {
    for (;;) {
      const now = Date.now();
      const due = queue.delayed.filter((m) => m.visibleAt <= now);
      if (due.length > 0) {
        queue.delayed = queue.delayed.filter((m) => m.visibleAt > now);
        for (const m of due) {
          queue.ready.push({ ...m, readyAt: now });
        }
      }
      if (queue.ready.length === 0) {
        if (queue.delayed.length === 0) {
          return;
        }
        await sleep(POLL_MS);
        continue;
      }
      const { maxBatchSize, maxBatchTimeout } = queue.settings;
      const waited = now - queue.ready[0].readyAt;
      if (queue.ready.length < maxBatchSize && waited < maxBatchTimeout * 1000) {
        await sleep(Math.min(POLL_MS, maxBatchTimeout * 1000 - waited));
        continue;
      }
      await deliver(queue, queue.ready.splice(0, maxBatchSize), env, ctx);
    }
  } finally {
    queue.slots -= 1;
  }
}

function forConsumer(m) {
  const base = { id: m.id, timestamp: new Date(m.timestamp), attempts: m.failedAttempts + 1 };
  switch (m.contentType) {
    case "v8":
      return { ...base, serializedBody: m.bytes };
    case "text":
      return { ...base, body: new TextDecoder().decode(m.bytes) };
    case "json":
      return { ...base, body: JSON.parse(new TextDecoder().decode(m.bytes)) };
    default:
      return { ...base, body: m.bytes.slice().buffer };
  }
}

async function deliver(queue, batch, env, ctx) {
  const started = Date.now();
  let result;
  try {
    result = await env.CONSUMER.queue(queue.name, batch.map(forConsumer));
  } catch (e) {
    console.error(JSON.stringify({ event: "queue_standin", queue: queue.name, error: String(e) }));
    result = { outcome: "exception", retryBatch: { retry: true } };
  }
  const acked = new Set(result.explicitAcks ?? []);
  const retried = new Map((result.retryMessages ?? []).map((r) => [r.msgId, r.delaySeconds]));
  const retryAll = result.outcome !== "ok" || result.retryBatch?.retry === true;
  const batchDelay = result.retryBatch?.delaySeconds ?? queue.settings.retryDelay ?? 0;
  const dead = [];
  let retries = 0;
  for (const m of batch) {
    if (acked.has(m.id) || !(retryAll || retried.has(m.id))) {
      continue;
    }
    m.failedAttempts += 1;
    if (m.failedAttempts <= queue.settings.maxRetries) {
      retries += 1;
      enqueue(queue, m, retried.get(m.id) ?? batchDelay);
    } else {
      dead.push(m);
    }
  }
  const dlq = queue.settings.deadLetterQueue && queueNamed(env, queue.settings.deadLetterQueue);
  for (const m of dead) {
    if (dlq) {
      enqueue(dlq, { ...m, failedAttempts: 0 }, 0);
    } else {
      console.error(JSON.stringify({ event: "queue_standin", queue: queue.name, dropped: m.id }));
    }
  }
  if (dlq && dead.length > 0) {
    startSlot(dlq, env, ctx);
  }
  console.log(
    JSON.stringify({
      event: "queue_standin",
      queue: queue.name,
      messages: batch.length,
      outcome: result.outcome,
      retried: retries,
      dead_lettered: dead.length,
      backlog: queue.ready.length + queue.delayed.length,
      in_flight: queue.slots,
      ms: Date.now() - started,
    }),
  );
}

export default {
  async fetch(request, env, ctx) {
    const queue = queueNamed(env, ctx.props?.queue);
    if (queue === undefined) {
      return new Response(`no queue ${ctx.props?.queue}`, { status: 404 });
    }
    let messages;
    try {
      messages = await incoming(request);
    } catch (e) {
      return new Response(e.message, { status: e.status ?? 500, statusText: e.message });
    }
    const timestamp = Date.now();
    for (const { contentType, bytes, delay } of messages) {
      enqueue(queue, { id: newId(), timestamp, contentType, bytes, failedAttempts: 0 }, delay);
    }
    startSlot(queue, env, ctx);
    return Response.json({ metadata: { metrics: metrics(queue) } });
  },
};

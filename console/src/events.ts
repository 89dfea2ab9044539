// The live feed: `GET /v1/events` read with fetch rather than EventSource, because EventSource
// cannot send the bearer token. A lost connection is resumed with `Last-Event-ID`, so no event
// is missed or repeated.
import type { Schemas } from "./api";
import { reportUnauthorized, token } from "./api";

export type JobEvent = Schemas["JobEvent"];
export type FeedStatus = "connecting" | "live" | "reconnecting" | "closed";

export interface FeedOptions {
  /** Only this job's events. */
  job?: string;
  /** Start with at most this many of the newest events rather than the first ever. */
  tail?: number;
  onEvent: (event: JobEvent) => void;
  onStatus?: (status: FeedStatus) => void;
}

export interface Feed {
  close(): void;
  /** The sequence number of the last event handed on. */
  readonly last: number;
}

const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5000;

export function openFeed(options: FeedOptions): Feed {
  let last = -1;
  let closed = false;
  let controller: AbortController | null = null;
  let retry = RETRY_MIN_MS;

  const status = (s: FeedStatus) => options.onStatus?.(s);

  async function connect(): Promise<void> {
    while (!closed) {
      controller = new AbortController();
      const url = new URL("/v1/events", location.origin);
      if (options.job) url.searchParams.set("job", options.job);
      const headers: Record<string, string> = { Accept: "text/event-stream" };
      const secret = token.get();
      if (secret) headers.Authorization = `Bearer ${secret}`;
      if (last >= 0) headers["Last-Event-ID"] = String(last);
      else if (options.tail !== undefined) url.searchParams.set("tail", String(options.tail));
      try {
        const response = await fetch(url, { headers, signal: controller.signal, cache: "no-store" });
        if (response.status === 401) reportUnauthorized();
        // Refused for good (no token, a job that is not there, a bad parameter): asking again
        // gives the same answer. A busy or restarting server (408, 429, 5xx) is asked again.
        if (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429) {
          closed = true;
          status("closed");
          return;
        }
        if (!response.ok || !response.body) throw new Error(`events answered ${response.status}`);
        status("live");
        retry = RETRY_MIN_MS;
        await read(response.body);
      } catch {
        // A drop, a network failure or close(): reconnect unless closed.
      }
      if (closed) break;
      status("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, retry));
      retry = Math.min(retry * 2, RETRY_MAX_MS);
    }
    status("closed");
  }

  async function read(body: ReadableStream<Uint8Array>): Promise<void> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      // Line ends normalised first; the server sends "\n", a proxy might not.
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  }

  function dispatch(block: string): void {
    let id: string | null = null;
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const name = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (name === "id") id = value;
      else if (name === "data") data.push(value);
    }
    if (!data.length) return;
    const seq = id === null ? NaN : Number(id);
    if (Number.isFinite(seq)) {
      if (seq <= last) return;
      last = seq;
    }
    try {
      options.onEvent(JSON.parse(data.join("\n")) as JobEvent);
    } catch {
      // A malformed event is skipped; the next one carries on.
    }
  }

  status("connecting");
  void connect();
  return {
    close() {
      closed = true;
      controller?.abort();
    },
    get last() {
      return last;
    },
  };
}

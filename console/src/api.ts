// The console's only way to the server: a client typed from the committed OpenAPI spec
// (`npm run gen` writes api.gen.ts from openapi/ferry.v1.json), so a contract change that breaks
// a page fails `tsc`.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./api.gen";
import { h } from "./dom";

export type Schemas = components["schemas"];
export type Problem = Schemas["Problem"];

const TOKEN_KEY = "ferry.token";

/** The API token lives in sessionStorage only: never a URL, a cookie or localStorage. */
export const token = {
  get: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  set: (value: string) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** Called when the server refuses the token (401): the session is over. */
let onUnauthorized: () => void = () => {};
export function whenUnauthorized(callback: () => void): void {
  onUnauthorized = callback;
}

/** For calls made without the client (the event feed): the server refused the token. */
export function reportUnauthorized(): void {
  onUnauthorized();
}

const auth: Middleware = {
  onRequest({ request }) {
    const secret = token.get();
    if (secret) request.headers.set("Authorization", `Bearer ${secret}`);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401) onUnauthorized();
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: location.origin });
api.use(auth);

/**
 * A fresh `Idempotency-Key`: 128 random bits in hex. `crypto.randomUUID` would do, but browsers
 * offer it only on HTTPS or localhost, and the REST API is often plain HTTP on a private network.
 */
export function newIdempotencyKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A refused or failed call, carrying the server's problem+json when it sent one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem | null,
  ) {
    super(problem ? `${problem.title}: ${problem.detail}` : `the server answered ${status}`);
  }
}

type Result<T> = { data?: T; error?: unknown; response: Response };

/** The data of a successful call; an ApiError otherwise. */
export async function ok<T>(call: Promise<Result<T>>): Promise<T> {
  let result: Result<T>;
  try {
    result = await call;
  } catch (cause) {
    throw new ApiError(0, {
      type: "urn:ferry:problem:unreachable",
      title: "Server unreachable",
      status: 0,
      detail: `the request did not reach the server (${String(cause)})`,
    });
  }
  if (result.response.ok && result.data !== undefined) return result.data;
  if (result.response.ok) return undefined as T;
  throw new ApiError(result.response.status, asProblem(result.error));
}

function asProblem(body: unknown): Problem | null {
  if (body && typeof body === "object" && "title" in body && "detail" in body) return body as Problem;
  return null;
}

/** An error as a person reads it: title, detail, and each field's complaint. Never raw JSON. */
export function problemView(error: unknown): HTMLElement {
  if (error instanceof ApiError && error.problem) {
    const { title, detail, status, errors } = error.problem;
    return h(
      "div",
      { class: "problem", role: "alert" },
      h("strong", null, title),
      status ? h("span", { class: "status" }, ` (${status})`) : null,
      h("p", null, detail),
      errors && errors.length
        ? h("ul", null, ...errors.map((e) => h("li", null, h("code", null, e.field), ": ", e.message)))
        : null,
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return h("div", { class: "problem", role: "alert" }, h("strong", null, "Something went wrong"), h("p", null, message));
}

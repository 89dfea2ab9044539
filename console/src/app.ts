// What every page is given, and the small shared pieces pages compose.
import type { Schemas } from "./api";

export type Role = Schemas["Role"];
export type Me = Schemas["Me"];

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export interface PageContext {
  me: Me;
  /** True when the signed-in role includes `role`: controls it may not use are not offered. */
  can(role: Role): boolean;
  /** Route parameters, e.g. the `:id` of `/jobs/:id`. */
  params: Record<string, string>;
  /** The route's query (after `?` in the hash). */
  query: URLSearchParams;
  /** Moves to another route of the console. */
  go(route: string): void;
}

/** Renders into `root`; may return a function that stops its timers and feeds. */
export type Page = (root: HTMLElement, ctx: PageContext) => void | (() => void) | Promise<void | (() => void)>;

export function roleAllows(have: Role, need: Role): boolean {
  return RANK[have] >= RANK[need];
}

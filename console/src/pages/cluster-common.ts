// Pieces every tab of the cluster page shares: what a tab is given, server-side paging with a
// cursor stack, and keeping a tab's choices in the URL so a reload or a shared link lands on them.
import { problemView, type Schemas } from "../api";
import type { PageContext } from "../app";
import { h, none, replace, type Child } from "../dom";

export interface TabContext {
  cluster: Schemas["Cluster"];
  ctx: PageContext;
  /** True once the person has left the page: loops and late answers stop there. */
  stopped(): boolean;
}

export const PAGE_SIZE = 100;

/** How long the page follows something the server is still working on before leaving it to run. */
export const FOLLOW_MS = 10 * 60 * 1000;

export const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

export function clusterRoute(cluster: Schemas["Cluster"], tab?: string, query?: Record<string, string | number | null | undefined>): string {
  let route = `/clusters/${encodeURIComponent(cluster.id)}`;
  if (tab) route += `/${tab}`;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) if (value !== null && value !== undefined && value !== "") params.set(key, String(value));
  const qs = params.toString();
  return qs ? `${route}?${qs}` : route;
}

/**
 * Records a tab's choices in the hash without navigating: `replaceState` fires no `hashchange`,
 * so the router does not render the page again and lose what is on screen.
 */
export function rememberQuery(cluster: Schemas["Cluster"], tab: string, query: Record<string, string | number | null | undefined>): void {
  history.replaceState(history.state, "", `#${clusterRoute(cluster, tab, query)}`);
}

interface Paged<T> {
  items: T[];
  next?: string | null;
}

export interface PagedList {
  /** Loads the first page again, e.g. after the filters changed. */
  reload(): Promise<void>;
}

/**
 * A list the server pages: only one page is ever held, and Previous goes back through the
 * cursors already seen because the API's cursors only go forward.
 */
export function pagedList<T>(
  into: HTMLElement,
  fetchPage: (cursor: string | undefined) => Promise<Paged<T>>,
  render: (items: T[]) => Child,
  options: { empty: string; noun: string; pageSize?: number; stopped?: () => boolean },
): PagedList {
  const cursors: (string | undefined)[] = [undefined];
  const size = options.pageSize ?? PAGE_SIZE;
  let ticket = 0;

  /** `via` is the pager button pressed: the pager is redrawn, so the keyboard is put back on it. */
  async function load(page: number, via?: "previous" | "next"): Promise<void> {
    const mine = ++ticket;
    into.setAttribute("aria-busy", "true");
    try {
      const result = await fetchPage(cursors[page]);
      if (mine !== ticket || options.stopped?.()) return;
      cursors.length = page + 1;
      if (result.next) cursors.push(result.next);
      const first = page * size + 1;
      const previous = h("button", { type: "button", disabled: page === 0, onclick: () => void load(page - 1, "previous") }, "Previous");
      const next = h("button", { type: "button", disabled: !result.next, onclick: () => void load(page + 1, "next") }, "Next");
      const pager =
        page > 0 || result.next
          ? h(
              "nav",
              { class: "pager", "aria-label": `${options.noun} pages` },
              previous,
              h("span", { class: "page-number" }, `Page ${page + 1} · ${options.noun} ${first}–${first + result.items.length - 1}`),
              next,
            )
          : null;
      const hadFocus = into.contains(document.activeElement) || document.activeElement === document.body;
      replace(into, result.items.length ? render(result.items) : none(options.empty), pager);
      if (via && hadFocus && pager) {
        // The same button when it still leads somewhere, else the other one (on the last page, Next is off).
        const same = via === "next" ? next : previous;
        (same.disabled ? (via === "next" ? previous : next) : same).focus();
      }
    } catch (error) {
      if (mine === ticket && !options.stopped?.()) replace(into, problemView(error));
    } finally {
      if (mine === ticket) into.removeAttribute("aria-busy");
    }
  }

  return {
    reload: () => {
      cursors.length = 1;
      return load(0);
    },
  };
}

/** A JSON value from the API as a person reads it; always text, never markup. */
export function display(value: unknown): string {
  if (value === undefined) return "(absent)";
  if (value === null) return "none";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

/** Moves the keyboard to a table row (the first a "more" button brought), focusable only from script. */
export function focusRow(row: HTMLTableRowElement | undefined): void {
  if (!row) return;
  row.tabIndex = -1;
  row.focus();
}

export function scrollTable(table: HTMLTableElement, className?: string): HTMLElement {
  if (className) table.classList.add(className);
  return h("div", { class: "scroll" }, table);
}

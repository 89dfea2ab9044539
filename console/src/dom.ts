// Every value from the API reaches the page through these helpers, as text nodes or attribute
// values, never as markup: share names and principals may hold `<script>`.

export type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/**
 * Creates an element. `on*` attributes take listeners; other attributes are set as values. An
 * attribute that would run or style something from a string is refused outright, so no value
 * from the API can reach one: `on*` must be a function, `style` is never set (the CSP forbids
 * it anyway), and a link goes only to a route of the console (`#/...`).
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) {
        if (typeof value !== "function") throw new Error(`h(): ${key} takes a function`);
        el.addEventListener(key.slice(2), value as EventListener);
      } else if (key === "style" || ((key === "href" || key === "src") && !String(value).startsWith("#"))) {
        throw new Error(`h(): ${key}="${String(value)}" is not allowed`);
      } else if (value === true) {
        el.setAttribute(key, "");
      } else {
        el.setAttribute(key, String(value));
      }
    }
  }
  append(el, ...children);
  return el;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, ...children);
}

/** A table with a header row; `rows` are arrays of cells. */
export function table(headers: string[], rows: Child[][], caption?: string): HTMLTableElement {
  return h(
    "table",
    null,
    caption ? h("caption", null, caption) : null,
    h("thead", null, h("tr", null, ...headers.map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", null, ...rows.map((cells) => h("tr", null, ...cells.map((cell) => h("td", null, cell))))),
  );
}

/** A link inside the console. */
export function link(route: string, ...children: Child[]): HTMLAnchorElement {
  return h("a", { href: `#${route}` }, ...children);
}

/**
 * A value from the API as the suffix of a class name: letters and `_` only, so a value with a
 * space cannot add classes of its own choosing.
 */
export function stateClass(value: string): string {
  return value.toLowerCase().replace(/[^a-z_]/g, "");
}

/** A state shown as a coloured badge; the colour comes from a class named after the state. */
export function badge(state: string): HTMLSpanElement {
  return h("span", { class: `badge state-${stateClass(state)}` }, state);
}

/** A figure with its label, as the summaries at the top of a page show them. */
export function stat(value: Child, label: string): HTMLElement {
  return h("div", { class: "stat" }, h("b", null, value), h("span", null, label));
}

/** The line a section shows while its data is on the way. */
export function loading(): HTMLParagraphElement {
  return h("p", { class: "muted" }, "Loading…");
}

export function section(title: string, ...children: Child[]): HTMLElement {
  return h("section", null, h("h2", null, title), ...children);
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateFormat.format(date);
}

/** `<time>` with the exact instant in its title. */
export function time(iso: string | null | undefined): HTMLElement {
  if (!iso) return h("span", null, "—");
  return h("time", { datetime: iso, title: iso }, when(iso));
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function seconds(s: number | null | undefined): string {
  if (s === null || s === undefined) return "—";
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** An empty-state line. */
export function none(text: string): HTMLParagraphElement {
  return h("p", { class: "none" }, text);
}

/**
 * Asks before an action that interrupts service. Resolves true when the person confirms.
 * Uses a modal `<dialog>`, so the keyboard and screen readers treat it as one.
 */
export function confirmAction(title: string, detail: string, confirmLabel: string): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "confirm", "aria-labelledby": "confirm-title" },
      h("h2", { id: "confirm-title" }, title),
      h("p", null, detail),
    );
    const finish = (ok: boolean) => {
      dialog.close();
      dialog.remove();
      resolve(ok);
    };
    const cancel = h("button", { type: "button", onclick: () => finish(false) }, "Cancel");
    const ok = h("button", { type: "button", class: "danger", onclick: () => finish(true) }, confirmLabel);
    dialog.append(h("div", { class: "actions" }, cancel, ok));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      finish(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** A labelled form field. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLLabelElement {
  return h("label", { class: "field" }, h("span", null, label), control, hint ? h("small", null, hint) : null);
}

// The console's shell: sign-in, navigation and the hash router. Routes live in the URL's hash
// (`/console/#/jobs/ID`), so a link or a reload lands on the same page and the token never does.
import { ApiError, api, ok, problemView, token, whenUnauthorized } from "./api";
import { type Me, type Page, type PageContext, roleAllows } from "./app";
import { field, h, replace } from "./dom";
import { auditPage } from "./pages/audit";
import { clusterPage } from "./pages/cluster";
import { jobPage, jobsPage } from "./pages/job";
import { overviewPage } from "./pages/overview";
import { planPage } from "./pages/plan";
import { storagePage } from "./pages/storage";

interface Route {
  pattern: RegExp;
  names: string[];
  page: Page;
  title: string;
}

function route(path: string, page: Page, title: string): Route {
  const names: string[] = [];
  const source = path.replace(/:([a-z]+)/g, (_, name: string) => {
    names.push(name);
    return "([^/]+)";
  });
  return { pattern: new RegExp(`^${source}$`), names, page, title };
}

const ROUTES: Route[] = [
  route("/", overviewPage, "Overview"),
  route("/clusters/:id", clusterPage, "Cluster"),
  route("/clusters/:id/:tab", clusterPage, "Cluster"),
  route("/plan", planPage, "Plan a migration"),
  route("/jobs", jobsPage, "Jobs"),
  route("/jobs/:id", jobPage, "Job"),
  route("/storage", storagePage, "Storage"),
  route("/audit", auditPage, "Audit"),
];

const NAV: [string, string][] = [
  ["/", "Overview"],
  ["/plan", "Plan"],
  ["/jobs", "Jobs"],
  ["/storage", "Storage"],
  ["/audit", "Audit"],
];

const app = document.getElementById("app") as HTMLElement;
let me: Me | null = null;
let stopPage: (() => void) | null = null;
let rendering = 0;

function signOut(reason?: string): void {
  token.clear();
  me = null;
  stopPage?.();
  stopPage = null;
  showSignIn(reason);
}

// Only a session that was signed in ends here; a refused sign-in answers in its own form.
whenUnauthorized(() => {
  if (me) signOut("The server no longer accepts this token. Sign in again.");
});

function showSignIn(reason?: string): void {
  document.title = "Sign in · Ferry";
  const input = h("input", {
    type: "password",
    name: "token",
    autocomplete: "off",
    required: true,
    spellcheck: "false",
  });
  const message = h("div", { "aria-live": "polite" }, reason ? h("p", { class: "notice" }, reason) : null);
  const form = h(
    "form",
    { class: "signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Ferry"),
    h("p", null, "Sign in with an API token (", h("code", null, "ferry token create"), "). It is kept in this tab only."),
    field("API token", input),
    h("button", { type: "submit" }, "Sign in"),
    message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    token.set(input.value.trim());
    try {
      me = await ok(api.GET("/v1/me"));
      input.value = "";
      await render();
    } catch (error) {
      token.clear();
      const text =
        error instanceof ApiError && error.status === 401
          ? h("div", { class: "problem", role: "alert" }, h("strong", null, "That token is not valid"), h("p", null, "Check it, or create one with ", h("code", null, "ferry token create"), "."))
          : problemView(error);
      replace(message, text);
    }
  });
  replace(app, h("main", { class: "signin-page" }, form));
  input.focus();
}

function current(): { path: string; query: URLSearchParams } {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path = "/", query = ""] = hash.split("?", 2);
  return { path, query: new URLSearchParams(query) };
}

function header(path: string, live: HTMLElement): HTMLElement {
  const links = NAV.map(([to, label]) => {
    const active = to === "/" ? path === "/" : path.startsWith(to);
    return h("li", null, h("a", { href: `#${to}`, "aria-current": active ? "page" : null }, label));
  });
  return h(
    "header",
    { class: "top" },
    h("a", { class: "brand", href: "#/" }, "Ferry"),
    h("nav", { "aria-label": "Main" }, h("ul", null, ...links)),
    live,
    h(
      "div",
      { class: "who" },
      h("span", { class: "name", title: me?.token_id ?? "" }, me?.name ?? ""),
      h("span", { class: `role role-${me?.role ?? ""}` }, me?.role ?? ""),
      h("button", { type: "button", class: "link", onclick: () => signOut("Signed out.") }, "Sign out"),
    ),
  );
}

/** `moveFocus`: after a navigation, focus goes to the new page, as a full page load would. */
async function render(moveFocus = false): Promise<void> {
  if (!me) return showSignIn();
  const ticket = ++rendering;
  stopPage?.();
  stopPage = null;
  const { path, query } = current();
  let found: { route: Route; params: Record<string, string> } | null = null;
  for (const r of ROUTES) {
    const match = r.pattern.exec(path);
    if (match) {
      const params: Record<string, string> = {};
      try {
        r.names.forEach((name, i) => (params[name] = decodeURIComponent(match[i + 1] ?? "")));
      } catch {
        // A malformed escape (`%E0`) names no page; it is "No such page" below.
        break;
      }
      found = { route: r, params };
      break;
    }
  }
  const main = h("main", { id: "main", tabindex: "-1" });
  const live = h("span", { class: "live", "aria-live": "polite" });
  replace(app, h("a", { class: "skip", href: "#main", onclick: skipToMain }, "Skip to content"), header(path, live), main);
  if (!found) {
    document.title = "Not found · Ferry";
    replace(main, h("h1", null, "No such page"), h("p", null, h("a", { href: "#/" }, "Go to the overview")));
    return;
  }
  document.title = `${found.route.title} · Ferry`;
  const signedIn = me;
  const ctx: PageContext = {
    me: signedIn,
    can: (role) => roleAllows(signedIn.role, role),
    params: found.params,
    query,
    go: (to) => {
      location.hash = `#${to}`;
    },
  };
  try {
    const stop = await found.route.page(main, ctx);
    if (ticket !== rendering) {
      if (typeof stop === "function") stop();
      return;
    }
    stopPage = typeof stop === "function" ? stop : null;
    if (moveFocus) main.focus();
  } catch (error) {
    if (ticket === rendering) replace(main, problemView(error));
  }
}

function skipToMain(event: Event): void {
  event.preventDefault();
  document.getElementById("main")?.focus();
}

window.addEventListener("hashchange", () => void render(true));

async function start(): Promise<void> {
  if (!token.get()) return showSignIn();
  try {
    me = await ok(api.GET("/v1/me"));
  } catch (error) {
    token.clear();
    return showSignIn(error instanceof ApiError && error.status === 401 ? "Sign in again." : undefined);
  }
  await render();
}

void start();

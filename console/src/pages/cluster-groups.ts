// The groups tab: each clustered group with its owner and state; opened, its resources in the
// order they come online, each with what it depends on, as the admin rebuilds them on the target.
import { api, ok, problemView, type Schemas } from "../api";
import { badge, h, link, loading, replace } from "../dom";
import { clusterRoute, display, focusRow, pagedList, type TabContext } from "./cluster-common";

const GROUPS_PER_PAGE = 25;
const FOLD_SHARES_OVER = 25;
const SHARE_RESOURCES_PER_SLICE = 200;

const KIND_NAMES: Record<Schemas["ResourceKind"], string> = {
  network_name: "Network name",
  ip_address: "IP address",
  physical_disk: "Physical disk",
  file_server: "File server",
  file_share: "File share",
  generic: "Generic",
};

export function groupsTab(root: HTMLElement, tab: TabContext): Promise<void> {
  const list = h("div", { class: "groups" });
  replace(root, h("h2", null, "Groups"), list);
  return pagedList(
    list,
    (cursor) => ok(api.GET("/v1/clusters/{id}/groups", { params: { path: { id: tab.cluster.id }, query: { limit: GROUPS_PER_PAGE, cursor } } })),
    (groups) => h("div", null, ...groups.map((g, i) => groupItem(g, tab, i === 0))),
    { empty: "No group in the latest snapshot: discover the cluster first.", noun: "groups", pageSize: GROUPS_PER_PAGE, stopped: tab.stopped },
  ).reload();
}

function groupItem(group: Schemas["GroupSummary"], tab: TabContext, open: boolean): HTMLElement {
  const detail = h("div", { class: "group-detail" }, loading());
  let loaded = false;
  const item = h(
    "details",
    { class: "group", "data-group": group.name },
    h(
      "summary",
      null,
      h("strong", { class: "group-name" }, group.name),
      " ",
      badge(group.state),
      h("span", { class: "muted" }, ` owner ${group.owner_node ?? "none"} · ${group.resource_count} resources · ${group.share_count} shares`),
    ),
    h("p", null, link(clusterRoute(tab.cluster, "shares", { group: group.id }), `Shares of ${group.name}`)),
    detail,
  );
  const load = async () => {
    if (loaded) return;
    loaded = true;
    try {
      const full = await ok(api.GET("/v1/groups/{id}", { params: { path: { id: group.id } } }));
      if (!tab.stopped()) replace(detail, resourcesView(full.resources));
    } catch (error) {
      loaded = false;
      replace(detail, problemView(error));
    }
  };
  item.addEventListener("toggle", () => {
    if (item.open) void load();
  });
  item.open = open;
  return item;
}

function resourcesView(resources: Schemas["Resource"][]): HTMLElement {
  if (!resources.length) return h("p", { class: "none" }, "No resource.");
  const names = new Set(resources.map((r) => r.name));
  const requiredBy = new Map<string, string[]>();
  for (const r of resources) for (const d of r.depends_on ?? []) requiredBy.set(d, [...(requiredBy.get(d) ?? []), r.name]);
  const row = (r: Schemas["Resource"]) =>
    h(
      "tr",
      { "data-kind": r.kind },
      ...[
        r.name,
        KIND_NAMES[r.kind] ?? r.kind,
        badge(r.state),
        dependencyList(r.depends_on ?? [], names),
        requiredCount(requiredBy.get(r.name) ?? []),
        propertyList(r.properties),
      ].map((cell) => h("td", null, cell)),
    );
  const ordered = onlineOrder(resources);
  const shares = ordered.filter((r) => r.kind === "file_share");
  // A group of many shares has as many share resources: they are all alike, so past a few they
  // are summed up, and listed a slice at a time only when asked.
  const folded = shares.length > FOLD_SHARES_OVER;
  const body = h("tbody", null, ...(folded ? ordered.filter((r) => r.kind !== "file_share") : ordered).map(row));
  const more = h("div", null);
  if (folded) {
    body.append(shareSummaryRow(shares, names));
    let drawn = 0;
    // One button, kept in place and relabelled, so the keyboard stays on it; when the last slice
    // is drawn it goes, and the keyboard moves to the first row that slice brought.
    const button = h("button", { type: "button" }, `List the ${shares.length} share resources`);
    button.addEventListener("click", () => {
      const slice = shares.slice(drawn, drawn + SHARE_RESOURCES_PER_SLICE).map(row);
      body.append(...slice);
      drawn += slice.length;
      if (drawn < shares.length) {
        button.textContent = `Show ${Math.min(SHARE_RESOURCES_PER_SLICE, shares.length - drawn)} more share resources`;
        return;
      }
      const focused = document.activeElement === button;
      button.remove();
      if (focused) focusRow(slice[0]);
    });
    more.append(button);
  }
  const resourceTable = h(
    "table",
    { class: "resources" },
    h("caption", null, "Resources, in the order they come online: each after what it depends on"),
    h("thead", null, h("tr", null, ...["Resource", "Kind", "State", "Depends on", "Required by", "Properties"].map((t) => h("th", { scope: "col" }, t)))),
    body,
  );
  return h("div", null, h("div", { class: "scroll" }, resourceTable), more);
}

/** One row standing for every file share resource: how many, in which states, on what they depend. */
function shareSummaryRow(shares: Schemas["Resource"][], names: Set<string>): HTMLTableRowElement {
  const states = new Map<string, number>();
  const deps = new Set<string>();
  for (const r of shares) {
    states.set(r.state, (states.get(r.state) ?? 0) + 1);
    for (const d of r.depends_on ?? []) deps.add(d);
  }
  return h(
    "tr",
    { class: "share-summary" },
    h("td", null, h("strong", null, `${shares.length} file share resources`)),
    h("td", null, KIND_NAMES.file_share),
    h("td", null, ...[...states].map(([state, n]) => h("span", null, badge(state), ` ${n} `))),
    h("td", null, dependencyList([...deps], names)),
    h("td", null, h("span", { class: "muted" }, "nothing")),
    h("td", null, h("span", { class: "muted" }, "one per share: see the Shares tab")),
  );
}

/** Dependencies first, so the table reads bottom-up the way the cluster brings the group online. */
function onlineOrder(resources: Schemas["Resource"][]): Schemas["Resource"][] {
  const byName = new Map(resources.map((r) => [r.name, r]));
  const done = new Set<string>();
  const visiting = new Set<string>();
  const ordered: Schemas["Resource"][] = [];
  const visit = (r: Schemas["Resource"]) => {
    // A cycle is invalid inventory, but the page must still show every resource once.
    if (done.has(r.name) || visiting.has(r.name)) return;
    visiting.add(r.name);
    for (const d of r.depends_on ?? []) {
      const dep = byName.get(d);
      if (dep) visit(dep);
    }
    visiting.delete(r.name);
    done.add(r.name);
    ordered.push(r);
  };
  resources.forEach(visit);
  return ordered;
}

function dependencyList(dependsOn: string[], names: Set<string>): HTMLElement | string {
  if (!dependsOn.length) return h("span", { class: "muted" }, "nothing");
  return h(
    "ul",
    { class: "deps" },
    ...dependsOn.map((d) => h("li", null, "→ ", d, names.has(d) ? null : h("span", { class: "badge state-missing" }, "not in this group"))),
  );
}

function requiredCount(by: string[]): HTMLElement | string {
  if (!by.length) return h("span", { class: "muted" }, "nothing");
  if (by.length <= 3) return by.join(", ");
  const named = by.slice(0, 50).join("\n");
  return h("span", { title: by.length > 50 ? `${named}\n…` : named }, `${by.length} resources`);
}

function propertyList(properties: Record<string, unknown> | undefined): HTMLElement | string {
  const entries = Object.entries(properties ?? {});
  if (!entries.length) return "";
  return h("ul", { class: "props" }, ...entries.map(([key, value]) => h("li", null, h("span", { class: "muted" }, `${key}: `), display(value))));
}

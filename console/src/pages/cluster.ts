// One cluster: its header (OS, description, newest snapshot, and for operators Discover now and
// Validate now), then tabs that are real links: groups, shares, snapshots, agents, validations.
import { api, ok, problemView, type Schemas } from "../api";
import type { Page } from "../app";
import { badge, h, link, replace, table, time } from "../dom";
import { FOLLOW_MS, clusterRoute, pagedList, scrollTable, sleep, type TabContext } from "./cluster-common";
import { groupsTab } from "./cluster-groups";
import { sharesTab } from "./cluster-shares";
import { changeCounts, snapshotsTab } from "./cluster-snapshots";
import { validationsTab } from "./cluster-validations";

const TABS: [string, string, (root: HTMLElement, tab: TabContext) => void | Promise<void>][] = [
  ["groups", "Groups", groupsTab],
  ["shares", "Shares", sharesTab],
  ["snapshots", "Snapshots", snapshotsTab],
  ["agents", "Agents", agentsTab],
  ["validations", "Validations", validationsTab],
];

const OS_NAMES: Record<Schemas["OsGeneration"], string> = {
  ws2003: "Windows Server 2003",
  ws2008: "Windows Server 2008",
  ws2008r2: "Windows Server 2008 R2",
  ws2012: "Windows Server 2012",
  ws2012r2: "Windows Server 2012 R2",
  ws2016: "Windows Server 2016",
  ws2019: "Windows Server 2019",
  ws2022: "Windows Server 2022",
  ws2025: "Windows Server 2025",
};

export const clusterPage: Page = async (root, ctx) => {
  let stopped = false;
  const id = ctx.params["id"] ?? "";
  const tabName = ctx.params["tab"] ?? "groups";
  const cluster = await ok(api.GET("/v1/clusters/{id}", { params: { path: { id } } }));
  document.title = `${cluster.name} · Ferry`;
  const tab: TabContext = { cluster, ctx, stopped: () => stopped };

  const latest = h("dd", null);
  const showLatest = (c: Schemas["Cluster"]) =>
    replace(latest, c.latest_snapshot === null || c.latest_snapshot === undefined ? "none yet" : link(clusterRoute(c, "snapshots"), `#${c.latest_snapshot}`));
  showLatest(cluster);

  const outcome = h("div", { class: "cluster-outcome", "aria-live": "polite" });
  const refreshLatest = async () => {
    try {
      showLatest(await ok(api.GET("/v1/clusters/{id}", { params: { path: { id: cluster.id } } })));
    } catch {
      // The outcome above already says what happened; a stale snapshot number is harmless.
    }
  };

  const actions = ctx.can("operator")
    ? h(
        "div",
        { class: "row cluster-actions" },
        h("button", { type: "button", class: "primary", onclick: (e: Event) => void discover(e.currentTarget as HTMLButtonElement) }, "Discover now"),
        h("button", { type: "button", onclick: (e: Event) => void validate(e.currentTarget as HTMLButtonElement) }, "Validate now"),
      )
    : null;

  async function discover(button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    replace(outcome, h("p", { class: "muted" }, "Asking an agent of the cluster to read it…"));
    try {
      let discovery = await ok(api.POST("/v1/clusters/{id}/discover", { params: { path: { id: cluster.id } }, body: {} }));
      const deadline = Date.now() + FOLLOW_MS;
      while (discovery.state === "running" && !stopped && Date.now() < deadline) {
        replace(outcome, h("p", { class: "muted" }, "Discovery running: an agent is reading the cluster…"));
        await sleep(1000);
        discovery = await ok(api.GET("/v1/discoveries/{id}", { params: { path: { id: discovery.id } } }));
      }
      if (stopped) return;
      replace(outcome, discoveryOutcome(cluster, discovery));
      await refreshLatest();
    } catch (error) {
      if (!stopped) replace(outcome, problemView(error));
    } finally {
      button.disabled = false;
    }
  }

  async function validate(button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    replace(outcome, h("p", { class: "muted" }, "Asking an agent of the cluster for its configuration facts…"));
    try {
      let validation = await ok(api.POST("/v1/clusters/{id}/validations", { params: { path: { id: cluster.id } }, body: {} }));
      const deadline = Date.now() + FOLLOW_MS;
      while (validation.state === "gathering" && !stopped && Date.now() < deadline) {
        replace(outcome, h("p", { class: "muted" }, `Validation #${validation.version}: gathering facts…`));
        await sleep(1000);
        validation = await ok(api.GET("/v1/validations/{id}", { params: { path: { id: validation.id } } }));
      }
      if (stopped) return;
      // The report is the validations tab's to show, with its filter and every remedy.
      ctx.go(clusterRoute(cluster, "validations", { validation: validation.id }));
    } catch (error) {
      if (!stopped) replace(outcome, problemView(error));
    } finally {
      button.disabled = false;
    }
  }

  const tabs = h(
    "nav",
    { "aria-label": "Cluster" },
    h(
      "ul",
      { class: "tabs" },
      ...TABS.map(([name, label]) =>
        h("li", null, h("a", { href: `#${clusterRoute(cluster, name)}`, "aria-current": name === tabName ? "page" : null }, label)),
      ),
    ),
  );
  const body = h("div", { class: "cluster-tab" });

  replace(
    root,
    h(
      "div",
      { class: "cluster-head" },
      h("div", null, h("h1", null, cluster.name), cluster.description ? h("p", { class: "cluster-description" }, cluster.description) : null),
      actions,
    ),
    h(
      "dl",
      { class: "cluster-facts" },
      h("dt", null, "Operating system"),
      h("dd", null, OS_NAMES[cluster.os] ?? cluster.os, " ", h("code", null, cluster.os)),
      h("dt", null, "Latest snapshot"),
      latest,
      h("dt", null, "Periodic discovery"),
      h("dd", null, discoveryInterval(cluster.discovery_interval_seconds)),
      h("dt", null, "Updated"),
      h("dd", null, time(cluster.updated_at)),
    ),
    outcome,
    tabs,
    body,
  );

  const chosen = TABS.find(([name]) => name === tabName);
  if (!chosen) {
    replace(body, h("p", null, "This cluster has no such tab."));
  } else {
    try {
      await chosen[2](body, tab);
    } catch (error) {
      replace(body, problemView(error));
    }
  }
  return () => {
    stopped = true;
  };
};

function discoveryInterval(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "the server's interval";
  if (seconds === 0) return "off";
  if (seconds % 3600 === 0) return `every ${seconds / 3600} h`;
  if (seconds % 60 === 0) return `every ${seconds / 60} min`;
  return `every ${seconds} s`;
}

function discoveryOutcome(cluster: Schemas["Cluster"], d: Schemas["Discovery"]): HTMLElement {
  if (d.state === "failed") {
    return h("div", { class: "problem", role: "alert" }, h("strong", null, "Discovery failed"), h("p", null, d.error ?? "no reason was given"));
  }
  if (d.state === "running") {
    return h("p", { class: "notice" }, "The discovery is still running; its outcome will show in the snapshots tab once it ends.");
  }
  if (!d.created) {
    return h("p", { class: "notice" }, `Discovery completed: nothing changed, snapshot #${d.snapshot ?? "?"} is still current.`);
  }
  const s = d.summary;
  const compared = d.previous_snapshot !== null && d.previous_snapshot !== undefined;
  return h(
    "div",
    { class: "notice" },
    h("strong", null, `Discovery completed: snapshot #${d.snapshot ?? "?"} stored`),
    compared ? ` (compared with #${d.previous_snapshot})` : " (the first one)",
    s
      ? h(
          "ul",
          { class: "inline-list" },
          h("li", null, `groups ${changeCounts(s.groups)}`),
          h("li", null, `shares ${changeCounts(s.shares)}`),
          h("li", null, `permission entries ${changeCounts(s.permissions)}`),
          h("li", null, `other ${changeCounts(s.other)}`),
        )
      : null,
    compared && d.snapshot !== null && d.snapshot !== undefined
      ? h("p", null, link(clusterRoute(cluster, "snapshots", { from: d.previous_snapshot, to: d.snapshot }), "See what changed"))
      : null,
  );
}

function agentsTab(root: HTMLElement, tab: TabContext): Promise<void> {
  const list = h("div", null);
  replace(root, h("h2", null, "Agents"), list);
  return pagedList(
    list,
    (cursor) => ok(api.GET("/v1/agents", { params: { query: { cluster: tab.cluster.id, limit: 100, cursor } } })),
    (agents) =>
      scrollTable(
        table(
          ["Node", "State", "Last seen", "Connected since", "Version", "Capabilities", "Enrolled"],
          agents.map((a) => [
            a.node,
            badge(a.state),
            time(a.last_seen_at),
            time(a.connected_at),
            a.software_version,
            a.capabilities.length ? h("ul", { class: "capabilities" }, ...a.capabilities.map((c) => h("li", null, h("code", null, c)))) : "none",
            time(a.created_at),
          ]),
        ),
        "agents",
      ),
    { empty: "No agent of this cluster has enrolled: start `ferry agent` on its nodes.", noun: "agents", stopped: tab.stopped },
  ).reload();
}

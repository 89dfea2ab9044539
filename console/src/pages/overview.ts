// The overview: every cluster with its OS and latest snapshot, the agents by state, the jobs
// running and those awaiting approval, and the newest events as they happen.
import { api, ok, problemView, type Schemas } from "../api";
import type { Page } from "../app";
import { badge, h, link, none, replace, section, stat, table, time } from "../dom";
import { openFeed, type JobEvent } from "../events";

const RECENT = 25;

/** Agents' states change without an event: the overview re-reads them this often. */
const POLL_MS = 10_000;
/** Events come in bursts (a group's steps); one re-read per burst is enough. */
const SETTLE_MS = 500;

export const overviewPage: Page = async (root) => {
  const stats = h("div", { class: "row", role: "group", "aria-label": "Summary" });
  const problem = h("div");
  const clustersBox = h("div");
  const agentsBox = h("div");
  const jobsBox = h("div");
  const events = h("ol", { class: "events", reversed: true });
  const eventsSection = section("Recent events", events);

  async function refresh(): Promise<void> {
    const [clusters, agents, jobs] = await Promise.all([
      ok(api.GET("/v1/clusters", { params: { query: { limit: 1000 } } })),
      ok(api.GET("/v1/agents", { params: { query: { limit: 1000 } } })),
      ok(api.GET("/v1/jobs", { params: { query: { limit: 1000 } } })),
    ]);
    const agentsByState = new Map<string, number>();
    for (const agent of agents.items) agentsByState.set(agent.state, (agentsByState.get(agent.state) ?? 0) + 1);
    // A failed job still holds its groups and can be retried, so it stays in view.
    const active = jobs.items.filter((job) => ["running", "paused", "cancelling", "failed"].includes(job.state));
    const awaiting = jobs.items.filter((job) => (job.summary["awaiting_approval"] ?? 0) > 0);
    replace(
      stats,
      stat(clusters.items.length, "clusters"),
      stat(agentsByState.get("connected") ?? 0, "agents connected"),
      stat(agentsByState.get("disconnected") ?? 0, "disconnected"),
      stat(agentsByState.get("down") ?? 0, "down"),
      stat(jobs.items.filter((job) => job.state === "running").length, "jobs running"),
      stat(awaiting.length, "awaiting approval"),
    );
    replace(clustersBox, clusterTable(clusters.items, agents.items));
    replace(agentsBox, agentTable(agents.items));
    replace(
      jobsBox,
      active.length ? jobTable(active) : none("No job is running."),
      // The list is oldest first: past a page, the newest jobs were not read.
      jobs.next ? h("p", { class: "notice" }, "Only the oldest 1,000 jobs were read here; Jobs lists them all.") : null,
    );
  }

  await refresh();
  replace(
    root,
    h("h1", null, "Overview"),
    problem,
    stats,
    h("div", { class: "grid" }, section("Clusters", clustersBox), section("Agents", agentsBox)),
    section(
      "Jobs",
      jobsBox,
      h(
        "p",
        { class: "row" },
        link("/plan", "Plan a migration"),
        link("/jobs", "Every job"),
      ),
    ),
    eventsSection,
  );

  let settle: number | undefined;
  const later = () => {
    if (settle === undefined) {
      settle = window.setTimeout(() => {
        settle = undefined;
        refresh().then(
          () => replace(problem),
          (error: unknown) =>
            replace(problem, h("p", null, "Showing what was read before: the overview could not be refreshed."), problemView(error)),
        );
      }, SETTLE_MS);
    }
  };
  const poll = window.setInterval(later, POLL_MS);
  const feed = openFeed({
    tail: RECENT,
    onEvent: (event) => {
      events.prepend(eventItem(event));
      while (events.children.length > RECENT) events.lastElementChild?.remove();
      later();
    },
    onStatus: (status) => eventsSection.setAttribute("data-feed", status),
  });
  return () => {
    feed.close();
    window.clearInterval(poll);
    window.clearTimeout(settle);
  };
};


function clusterTable(clusters: Schemas["Cluster"][], agents: Schemas["Agent"][]): HTMLElement {
  if (!clusters.length) return none("No cluster yet: `ferry cluster create`.");
  return h(
    "div",
    { class: "scroll" },
    table(
      ["Cluster", "OS", "Latest snapshot", "Agents connected", "Updated"],
      clusters.map((c) => {
        const own = agents.filter((a) => a.cluster_id === c.id);
        return [
          link(`/clusters/${encodeURIComponent(c.id)}`, c.name),
          c.os,
          c.latest_snapshot === null || c.latest_snapshot === undefined ? "none" : `#${c.latest_snapshot}`,
          `${own.filter((a) => a.state === "connected").length} / ${own.length}`,
          time(c.updated_at),
        ];
      }),
    ),
  );
}

function agentTable(agents: Schemas["Agent"][]): HTMLElement {
  if (!agents.length) return none("No agent has enrolled.");
  return h(
    "div",
    { class: "scroll" },
    table(
      ["Node", "Cluster", "State", "Last seen", "Version"],
      agents.map((a) => [a.node, a.cluster_name, badge(a.state), time(a.last_seen_at), a.software_version]),
    ),
  );
}

function jobTable(jobs: Schemas["Job"][]): HTMLElement {
  return h(
    "div",
    { class: "scroll" },
    table(
      ["Job", "State", "Groups", "Created by", "Created"],
      jobs.map((job) => [
        link(`/jobs/${encodeURIComponent(job.id)}`, job.name),
        badge(job.state),
        Object.entries(job.summary)
          .map(([state, count]) => `${count} ${state}`)
          .join(", "),
        job.created_by,
        time(job.created_at),
      ]),
    ),
  );
}

function eventItem(event: JobEvent): HTMLElement {
  const where = [event.group, event.step !== null && event.step !== undefined ? `step ${event.step}` : null]
    .filter(Boolean)
    .join(" · ");
  return h(
    "li",
    { "data-seq": event.seq },
    time(event.at),
    " ",
    h("span", { class: "muted" }, event.kind),
    " ",
    badge(event.state),
    where ? ` ${where}` : null,
    event.job_id ? h("span", null, " ", link(`/jobs/${encodeURIComponent(event.job_id)}`, "job")) : null,
    event.message ? h("div", { class: "muted" }, event.message) : null,
  );
}

// The jobs: a paged list, and one job as it runs. The job page is built once from
// GET /v1/jobs/{id}, then kept current from the live feed: every event is listed (by its
// sequence number) and triggers a re-read of the job, at most one every REFRESH_MS, which
// redraws only the groups whose version moved.
import { api, ok, problemView, type Schemas } from "../api";
import type { Page } from "../app";
import { badge, confirmAction, h, link, none, replace, seconds, table, time } from "../dom";
import { openFeed, type FeedStatus, type JobEvent } from "../events";
import { GroupView } from "./job-groups";
import { FINISHED_GROUP, FINISHED_JOB, clockTime, findingList, type JobDetail, type JobGroup } from "./job-view";

const PAGE = 50;
const REFRESH_MS = 300;

export const jobsPage: Page = (root, ctx) => {
  const results = h("div", { "aria-live": "polite" });
  const cursors: (string | undefined)[] = [undefined];

  async function load(page: number): Promise<void> {
    replace(results, h("p", { class: "muted" }, "Loading…"));
    try {
      const jobs = await ok(api.GET("/v1/jobs", { params: { query: { limit: PAGE, cursor: cursors[page] } } }));
      if (jobs.next) cursors[page + 1] = jobs.next;
      replace(
        results,
        jobs.items.length ? jobTable(jobs.items) : none(page ? "No more jobs." : "No job yet."),
        h(
          "div",
          { class: "pager" },
          h("button", { type: "button", disabled: page === 0, onclick: () => void load(page - 1) }, "Previous"),
          h("span", null, `Page ${page + 1}`),
          h("button", { type: "button", disabled: !jobs.next, onclick: () => void load(page + 1) }, "Next"),
        ),
      );
    } catch (error) {
      replace(results, problemView(error));
    }
  }

  replace(
    root,
    h("div", { class: "row spread" }, h("h1", null, "Jobs"), h("p", null, link("/plan", ctx.can("operator") ? "Plan a migration" : "Plan a migration (view only)"))),
    results,
  );
  void load(0);
};

function jobTable(jobs: Schemas["Job"][]): HTMLElement {
  return h(
    "div",
    { class: "scroll" },
    table(
      ["Job", "State", "Groups", "Route", "Created by", "Created", "Updated"],
      jobs.map((job) => [
        link(`/jobs/${encodeURIComponent(job.id)}`, job.name),
        badge(job.state),
        stateCounts(job.summary),
        `${job.request.source} → ${job.request.target}`,
        job.created_by,
        time(job.created_at),
        time(job.updated_at),
      ]),
    ),
  );
}

/** `3 succeeded · 1 failed`, each count a badge of its state. */
function stateCounts(summary: Record<string, number | undefined>): HTMLElement {
  const entries = Object.entries(summary).filter(([, n]) => (n ?? 0) > 0);
  if (!entries.length) return h("span", { class: "muted" }, "no group");
  return h(
    "span",
    { class: "counts" },
    ...entries.map(([state, n]) => h("span", { class: `badge state-${state.replace(/[^a-z_]/g, "")}` }, `${n} ${state}`)),
  );
}

const FEED_TEXT: Record<FeedStatus, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  closed: "Not live: reload the page",
};

const ATTENTION = new Set(["awaiting_approval", "failed", "rolling_back", "rolled_back", "rollback_failed"]);

export const jobPage: Page = async (root, ctx) => {
  const id = ctx.params.id ?? "";
  replace(root, h("h1", null, "Job"), h("p", { class: "muted" }, "Loading…"));
  let job: JobDetail = await ok(api.GET("/v1/jobs/{id}", { params: { path: { id } } }));
  const operator = ctx.can("operator");
  let stopped = false;

  const title = h("h1", { class: "job-title" });
  const meta = h("p", { class: "muted job-meta" });
  const feedStatus = h("span", { class: "feed", role: "status", "data-feed": "connecting" }, FEED_TEXT.connecting);
  const refreshProblem = h("div");
  const actionMessage = h("div", { "aria-live": "assertive" });
  const stats = h("div", { class: "row job-stats" });
  const attention = h("p", { class: "notice", hidden: true });
  const findings = h("div");

  // Job controls: built for operators only, shown when the job's state allows them.
  const button = (label: string, onclick: () => void, cls = "") => h("button", { type: "button", class: cls, onclick }, label);
  const controls = operator
    ? {
        approve: button("Approve all groups", () => void approve(null), "primary"),
        pause: button("Pause", () => void act("Paused", () => ok(api.POST("/v1/jobs/{id}/pause", { params: { path: { id } } })))),
        resume: button("Resume", () => void act("Resumed", () => ok(api.POST("/v1/jobs/{id}/resume", { params: { path: { id } } })))),
        cancel: button("Cancel job", () => void cancel(), "danger"),
      }
    : null;

  const filter = h(
    "select",
    { name: "show" },
    h("option", { value: "all" }, "every group"),
    h("option", { value: "attention" }, "needing attention"),
    h("option", { value: "active" }, "in progress"),
    h("option", { value: "finished" }, "finished"),
  );
  filter.addEventListener("change", () => applyFilter());

  const groupBody = h("tbody");
  const headers = ["Group", "State", "Current step", "Downtime", "Verification", "Retries", ...(operator ? ["Actions"] : [])];
  const details = h("div", { class: "group-details" });
  const views = new Map<string, GroupView>();
  job.groups.forEach((group, index) => {
    const view = new GroupView(id, group, operator ? { approve: (g) => void approve(g), retry: (g) => void retry(g) } : null, index);
    views.set(group.name, view);
    groupBody.append(view.row);
    details.append(view.details);
  });

  const events = h("ol", { class: "job-events", reversed: true, tabindex: 0, "aria-label": "Events, newest first" });
  const eventCount = h("span", { class: "muted" });

  replace(
    root,
    h("div", { class: "job-head" }, title, feedStatus),
    meta,
    refreshProblem,
    controls ? h("div", { class: "row job-controls", role: "group", "aria-label": "Job controls" }, controls.approve, controls.pause, controls.resume, controls.cancel) : null,
    actionMessage,
    attention,
    stats,
    h(
      "section",
      { "aria-labelledby": "groups-title" },
      h("div", { class: "row spread" }, h("h2", { id: "groups-title" }, "Groups"), h("label", { class: "check" }, "Show ", filter)),
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { class: "job-groups" },
          h("thead", null, h("tr", null, ...headers.map((c) => h("th", { scope: "col" }, c)))),
          groupBody,
        ),
      ),
    ),
    h("section", { "aria-labelledby": "detail-title" }, h("h2", { id: "detail-title" }, "Each group's steps"), details),
    findings,
    h("section", { "aria-labelledby": "events-title" }, h("h2", { id: "events-title" }, "Events ", eventCount), events),
  );

  function apply(detail: JobDetail): void {
    job = detail;
    replace(title, job.name, " ", badge(job.state));
    replace(
      meta,
      job.groups[0]?.route.join(" → ") ?? `${job.request.source} → ${job.request.target}`,
      ` · created by ${job.created_by} at ${clockTime(job.created_at)}`,
      job.request.require_approval ? " · requires approval" : "",
      job.approval ? ` · approved by ${job.approval.by} at ${clockTime(job.approval.at)}` : "",
      ` · id ${job.id}`,
    );
    for (const group of job.groups) {
      const view = views.get(group.name);
      if (!view) continue;
      view.jobApproval = job.approval ?? null;
      view.update(group);
    }

    const counts = new Map<string, number>();
    for (const g of job.groups) counts.set(g.state, (counts.get(g.state) ?? 0) + 1);
    const identical = job.groups.reduce((n, g) => n + (g.state === "succeeded" && g.verification ? g.verification.identical : 0), 0);
    const expected = job.groups.reduce((n, g) => n + (g.context?.baseline_shares ?? 0), 0);
    const downNow = job.groups.filter((g) => g.downtime_started_at && !g.downtime_ended_at).length;
    replace(
      stats,
      ...[...counts].map(([state, n]) => h("div", { class: "stat" }, h("b", null, n), badge(state))),
      h("div", { class: "stat" }, h("b", null, `${identical}/${expected}`), h("span", null, "shares verified")),
      h("div", { class: "stat" }, h("b", null, downNow), h("span", null, "groups down now")),
      h("div", { class: "stat" }, h("b", null, seconds(totalDowntime(job.groups))), h("span", null, "downtime so far")),
    );

    const waiting = counts.get("awaiting_approval") ?? 0;
    const failed = (counts.get("failed") ?? 0) + (counts.get("rolled_back") ?? 0) + (counts.get("rollback_failed") ?? 0);
    const notes = [
      waiting ? `${waiting} ${waiting === 1 ? "group waits" : "groups wait"} for approval.` : "",
      failed ? `${failed} ${failed === 1 ? "group" : "groups"} failed or rolled back.` : "",
    ].filter(Boolean);
    attention.hidden = notes.length === 0;
    replace(attention, notes.join(" "));

    if (controls) {
      const active = !FINISHED_JOB.has(job.state);
      controls.approve.hidden = !active || !(waiting > 0 || (job.request.require_approval && !job.approval));
      controls.pause.hidden = job.state !== "running";
      controls.resume.hidden = job.state !== "paused";
      controls.cancel.hidden = !(job.state === "running" || job.state === "paused");
    }
    replace(
      findings,
      job.findings && job.findings.length
        ? h("section", null, h("h2", null, "What the job learned"), findingList(job.findings))
        : null,
    );
    applyFilter();
  }

  function applyFilter(): void {
    const show = filter.value;
    for (const view of views.values()) {
      const group = job.groups.find((g) => g.name === view.name);
      const state = view.state;
      const retrying = group?.steps.some((s) => s.state === "retrying") ?? false;
      const visible =
        show === "all" ||
        (show === "attention" && (ATTENTION.has(state) || retrying)) ||
        (show === "active" && !FINISHED_GROUP.has(state)) ||
        (show === "finished" && FINISHED_GROUP.has(state));
      view.row.hidden = !visible;
      view.details.hidden = !visible;
    }
  }

  // Re-reading the job: at most one request in flight and one every REFRESH_MS; events that
  // arrive meanwhile are folded into the next read.
  let inflight = false;
  let dirty = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let lastRead = Date.now();
  function schedule(): void {
    dirty = true;
    if (inflight || timer !== undefined || stopped) return;
    timer = setTimeout(refresh, Math.max(0, lastRead + REFRESH_MS - Date.now()));
  }
  async function refresh(): Promise<void> {
    timer = undefined;
    if (!dirty || stopped) return;
    dirty = false;
    inflight = true;
    lastRead = Date.now();
    try {
      const detail = await ok(api.GET("/v1/jobs/{id}", { params: { path: { id } } }));
      if (!stopped) {
        apply(detail);
        replace(refreshProblem);
      }
    } catch (error) {
      // The page keeps what it last read; the next event (or reconnection) reads again.
      if (!stopped) replace(refreshProblem, h("div", { class: "stale" }, h("p", null, "Showing what was last read: the job could not be refreshed."), problemView(error)));
    } finally {
      inflight = false;
      if (dirty) schedule();
    }
  }

  // The event list: appended in batches, newest first.
  let queued: JobEvent[] = [];
  let seen = 0;
  let flushTimer: ReturnType<typeof setTimeout> | undefined;
  function queue(event: JobEvent): void {
    queued.push(event);
    flushTimer ??= setTimeout(flush, 50);
  }
  function flush(): void {
    flushTimer = undefined;
    const batch = queued;
    queued = [];
    const fragment = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) {
      const event = batch[i];
      if (event) fragment.append(eventItem(event));
    }
    events.prepend(fragment);
    seen += batch.length;
    replace(eventCount, `(${seen})`);
  }

  const feed = openFeed({
    job: id,
    onEvent: (event) => {
      queue(event);
      schedule();
    },
    onStatus: (status) => {
      feedStatus.dataset.feed = status;
      feedStatus.className = `feed feed-${status}`;
      replace(feedStatus, FEED_TEXT[status]);
      // Back after a drop: what happened meanwhile is replayed, but read the job anyway.
      if (status === "live") schedule();
    },
  });

  async function act(done: string, call: () => Promise<JobDetail>): Promise<void> {
    const buttons = controls ? Object.values(controls) : [];
    for (const b of buttons) b.disabled = true;
    replace(actionMessage, h("p", { class: "muted" }, "Working…"));
    try {
      const detail = await call();
      if (stopped) return;
      apply(detail);
      replace(actionMessage, h("p", { class: "done" }, `${done}.`));
    } catch (error) {
      replace(actionMessage, problemView(error));
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  }

  async function approve(group: string | null): Promise<void> {
    const targets = group ? job.groups.filter((g) => g.name === group) : job.groups.filter((g) => !FINISHED_GROUP.has(g.state));
    const downtime = targets.reduce((n, g) => n + cutoverEstimate(g), 0);
    const sure = await confirmAction(
      group ? `Approve the cutover of ${group}?` : `Approve the cutover of every group (${targets.length})?`,
      `A cutover takes the group's shares offline on ${job.request.source} until the target verifies them: service is interrupted (estimated downtime ${seconds(downtime)}${group ? "" : " over all groups"}).`,
      group ? `Approve ${group}` : "Approve all",
    );
    if (!sure) return;
    await act(group ? `Approved ${group}` : "Approved every group", () =>
      ok(api.POST("/v1/jobs/{id}/approve", { params: { path: { id } }, body: group ? { group } : {} })),
    );
  }

  async function retry(group: string): Promise<void> {
    const sure = await confirmAction(
      `Retry ${group}?`,
      "The group resumes at its failed step, or after a rollback at the start of its cutover: its shares go offline again (downtime).",
      `Retry ${group}`,
    );
    if (!sure) return;
    await act(`Retried ${group}`, () => ok(api.POST("/v1/jobs/{id}/groups/{group}/retry", { params: { path: { id, group } } })));
  }

  async function cancel(): Promise<void> {
    const cutting = job.groups.filter((g) => g.state === "cutting_over").length;
    const sure = await confirmAction(
      "Cancel this job?",
      `Groups not yet in their cutover stop where they are${cutting ? `; ${cutting} ${cutting === 1 ? "group" : "groups"} in cutover roll back to ${job.request.source}, offline until the rollback ends` : ""}. This cannot be undone.`,
      "Cancel the job",
    );
    if (!sure) return;
    await act("Cancelling", () => ok(api.POST("/v1/jobs/{id}/cancel", { params: { path: { id } } })));
  }

  apply(job);
  return () => {
    stopped = true;
    feed.close();
    if (timer !== undefined) clearTimeout(timer);
    if (flushTimer !== undefined) clearTimeout(flushTimer);
  };
};

function eventItem(event: JobEvent): HTMLElement {
  const where = event.group
    ? `${event.group}${event.step !== null && event.step !== undefined ? ` step ${event.step}` : ""}`
    : event.kind;
  return h(
    "li",
    { "data-seq": event.seq, class: `event event-${event.state.replace(/[^a-z_]/g, "")}` },
    h("time", { datetime: event.at, title: event.at }, clockTime(event.at)),
    " ",
    h("span", { class: "where" }, where),
    " ",
    badge(event.state),
    event.message ? h("span", { class: "message" }, ` ${event.message}`) : null,
  );
}

function totalDowntime(groups: JobGroup[]): number {
  const now = Date.now();
  return groups.reduce((n, g) => {
    if (!g.downtime_started_at) return n;
    const end = g.downtime_ended_at ? Date.parse(g.downtime_ended_at) : now;
    return n + Math.max(0, (end - Date.parse(g.downtime_started_at)) / 1000);
  }, 0);
}

function cutoverEstimate(group: JobGroup): number {
  return group.steps.filter((s) => s.phase === "cutover" && s.state !== "succeeded").reduce((n, s) => n + s.estimate_seconds, 0);
}

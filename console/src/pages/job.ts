// The jobs: a paged list, and one job as it runs. The job page reads the whole job once, then
// follows the live feed: every event is listed (by its sequence number), shown at once where it
// says enough (a group's or a step's new state, the job's state), and the groups it names are
// re-read one by one, so following a 1,000-group job costs what moved, not the job's size.
import { api, ok, problemView, type Schemas } from "../api";
import type { Page } from "../app";
import { badge, confirmAction, h, link, none, replace, seconds, table, time } from "../dom";
import { openFeed, type FeedStatus, type JobEvent } from "../events";
import { GroupView } from "./job-groups";
import { FINISHED_GROUP, FINISHED_JOB, clockTime, findingList, type JobDetail, type JobGroup, type JobStep } from "./job-view";

const PAGE = 50;
/** Re-reads start at most this often; the events of a burst are folded into one round. */
const REFRESH_MS = 300;
/** Groups re-read at the same time. */
const READS_AT_ONCE = 6;
/** Events kept in the page's list, newest first. */
const EVENTS_SHOWN = 2000;

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

const ATTENTION = new Set(["awaiting_approval", "failed", "rolled_back", "rollback_failed"]);

// The states an event may carry that the page can show before the re-read: other values (a
// group's or the job's `approved`) are news, not a state.
const JOB_STATES: ReadonlySet<string> = new Set<JobDetail["state"]>(["running", "paused", "cancelling", "succeeded", "failed", "cancelled"]);
const GROUP_STATES: ReadonlySet<string> = new Set<JobGroup["state"]>([
  "pending",
  "preparing",
  "awaiting_window",
  "awaiting_approval",
  "cutting_over",
  "cleaning_up",
  "succeeded",
  "failed",
  "rolling_back",
  "rolled_back",
  "rollback_failed",
  "cancelled",
]);
const STEP_STATES: ReadonlySet<string> = new Set<JobStep["state"]>(["pending", "running", "retrying", "succeeded", "failed", "skipped"]);

export const jobPage: Page = async (root, ctx) => {
  const id = ctx.params.id ?? "";
  replace(root, h("h1", null, "Job"), h("p", { class: "muted" }, "Loading…"));
  let job: JobDetail = await ok(api.GET("/v1/jobs/{id}", { params: { path: { id } } }));
  /**
   * The job's newest event when the page last read it whole: what events up to it changed is in
   * that read, so replayed when the feed opens, they are listed but not applied or re-read.
   */
  let shownThrough = job.event_seq;
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
  /** Where each group sits in `job.groups`, which holds the newest copy of each. */
  const position = new Map<string, number>();
  job.groups.forEach((group, index) => {
    const view = new GroupView(id, group, operator ? { approve: (g) => void approve(g), retry: (g) => void retry(g) } : null, index);
    views.set(group.name, view);
    position.set(group.name, index);
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

  /** A whole job as the server sent it (on open, after a reconnection, or answering a control). */
  function applyJob(detail: JobDetail): void {
    const held = job.groups;
    job = { ...detail, groups: held };
    shownThrough = Math.max(shownThrough, detail.event_seq);
    for (const group of detail.groups) take(group);
    drawHead();
    drawSummary();
    replace(
      findings,
      job.findings && job.findings.length
        ? h("section", null, h("h2", null, "What the job learned"), findingList(job.findings))
        : null,
    );
    applyFilter();
  }

  /**
   * One group as the server sent it, unless the page holds a later version (a whole read that
   * lands after a group's own re-read). Redraws the group only if it moved.
   */
  function take(group: JobGroup): void {
    const at = position.get(group.name);
    const held = at === undefined ? undefined : job.groups[at];
    const view = views.get(group.name);
    if (at === undefined || !held || !view) return;
    if ((held.version ?? -1) > (group.version ?? -1)) return;
    job.groups[at] = group;
    view.update(group);
  }

  function drawHead(): void {
    replace(title, job.name, " ", badge(job.state));
    replace(
      meta,
      job.groups[0]?.route.join(" → ") ?? `${job.request.source} → ${job.request.target}`,
      ` · created by ${job.created_by} at ${clockTime(job.created_at)}`,
      job.request.require_approval ? " · requires approval" : "",
      job.approval ? ` · approved by ${job.approval.by} at ${clockTime(job.approval.at)}` : "",
      ` · id ${job.id}`,
    );
    for (const view of views.values()) view.setJobApproval(job.approval ?? null);
  }

  /** Counts, notices and controls, from the groups the page holds rather than a read of the job. */
  function drawSummary(): void {
    summaryStale = false;
    const counts = new Map<string, number>();
    let identical = 0;
    let expected = 0;
    let downNow = 0;
    for (const g of job.groups) {
      counts.set(g.state, (counts.get(g.state) ?? 0) + 1);
      if (g.state === "succeeded" && g.verification) identical += g.verification.identical;
      expected += g.context?.baseline_shares ?? 0;
      if (g.downtime_started_at && !g.downtime_ended_at) downNow++;
    }
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
  }

  function applyFilter(only?: GroupView): void {
    const show = filter.value;
    for (const view of only ? [only] : views.values()) {
      const state = view.state;
      const retrying = view.current.steps.some((s) => s.state === "retrying");
      const visible =
        show === "all" ||
        (show === "attention" && (ATTENTION.has(state) || retrying)) ||
        (show === "active" && !FINISHED_GROUP.has(state)) ||
        (show === "finished" && FINISHED_GROUP.has(state));
      view.row.hidden = !visible;
      view.details.hidden = !visible;
    }
  }

  // What an event says, shown at once; the groups it names are re-read in the next round.
  let summaryStale = false;
  function follow(event: JobEvent): void {
    if (event.seq <= shownThrough) return;
    if (event.kind === "job") {
      followJob(event);
    } else if (event.kind === "finding") {
      // Findings live on the job: only a whole read has them.
      wholeWanted = true;
      schedule();
    } else if ((event.kind === "group" || event.kind === "step") && event.group) {
      const at = position.get(event.group);
      const held = at === undefined ? undefined : job.groups[at];
      const view = views.get(event.group);
      if (at === undefined || !held || !view) return;
      const shown = event.kind === "group" ? withGroupState(held, event.state) : withStepState(held, event.step, event.state);
      if (shown) {
        job.groups[at] = shown;
        view.preview(shown);
        applyFilter(view);
        summaryStale = true;
      }
      dirty.add(event.group);
      schedule();
    }
  }

  function followJob(event: JobEvent): void {
    if (JOB_STATES.has(event.state)) {
      job = { ...job, state: event.state as JobDetail["state"] };
    } else if (event.state === "approved" && !job.approval) {
      // The approval of every group, as the event tells it; a whole read when it does not.
      const by = /approved by (.+)$/.exec(event.message ?? "")?.[1];
      if (by) job = { ...job, approval: { by, at: event.at } };
      else {
        wholeWanted = true;
        schedule();
      }
    } else {
      return;
    }
    drawHead();
    drawSummary();
  }

  // Re-reading: a round reads the groups named since the previous round, READS_AT_ONCE at a
  // time, or the whole job when that is needed; rounds start at most one every REFRESH_MS and
  // never overlap, so no group is read twice at once.
  const dirty = new Set<string>();
  let wholeWanted = false;
  let busy = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let lastRound = 0;
  function schedule(): void {
    if (stopped || busy || timer !== undefined || (!wholeWanted && dirty.size === 0)) return;
    timer = setTimeout(() => void round(), Math.max(0, lastRound + REFRESH_MS - Date.now()));
  }
  async function round(): Promise<void> {
    timer = undefined;
    if (stopped) return;
    busy = true;
    lastRound = Date.now();
    const names = [...dirty];
    dirty.clear();
    const whole = wholeWanted;
    wholeWanted = false;
    let failure: unknown = null;
    const failed: string[] = [];
    let wholeFailed = false;
    if (whole) {
      // Every event delivered before this read was written before it: the read has them all.
      try {
        const detail = await ok(api.GET("/v1/jobs/{id}", { params: { path: { id } } }));
        if (!stopped) applyJob(detail);
      } catch (error) {
        failure = error;
        wholeFailed = true;
        failed.push(...names);
      }
    } else {
      let next = 0;
      const reader = async (): Promise<void> => {
        for (let name = names[next++]; name !== undefined && !stopped; name = names[next++]) {
          try {
            const group = await ok(api.GET("/v1/jobs/{id}/groups/{group}", { params: { path: { id, group: name } } }));
            if (stopped) return;
            take(group);
            const view = views.get(name);
            if (view) applyFilter(view);
          } catch (error) {
            failure = error;
            failed.push(name);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(READS_AT_ONCE, names.length) }, reader));
      if (!stopped) drawSummary();
    }
    busy = false;
    if (stopped) return;
    // The page keeps what it last read; what failed is read again with the next round, which
    // the next event (or the feed's reconnection) starts.
    if (failure) replace(refreshProblem, h("div", { class: "stale" }, h("p", null, "Showing what was last read: the job could not be refreshed."), problemView(failure)));
    else replace(refreshProblem);
    schedule();
    for (const name of failed) dirty.add(name);
    if (wholeFailed) wholeWanted = true;
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
    // The counts follow the states events showed, a batch at a time.
    if (summaryStale) drawSummary();
    const batch = queued;
    queued = [];
    const fragment = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) {
      const event = batch[i];
      if (event) fragment.append(eventItem(event));
    }
    events.prepend(fragment);
    seen += batch.length;
    // A 1,000-group job has tens of thousands of events; the page keeps the newest in view and
    // the job's log (per step and per group above) holds them all.
    while (events.childElementCount > EVENTS_SHOWN) events.lastElementChild?.remove();
    replace(eventCount, seen > EVENTS_SHOWN ? `(newest ${EVENTS_SHOWN} of ${seen})` : `(${seen})`);
  }

  let wasLive = false;
  const feed = openFeed({
    job: id,
    onEvent: (event) => {
      queue(event);
      follow(event);
    },
    onStatus: (status) => {
      feedStatus.dataset.feed = status;
      feedStatus.className = `feed feed-${status}`;
      replace(feedStatus, FEED_TEXT[status]);
      // Back after a drop: the missed events are replayed, but what they changed may be more
      // than they say (the job's findings, its approval): read the whole job once.
      if (status === "live") {
        if (wasLive) {
          wholeWanted = true;
          schedule();
        }
        wasLive = true;
      }
    },
  });

  async function act(done: string, call: () => Promise<JobDetail>): Promise<void> {
    const buttons = controls ? Object.values(controls) : [];
    for (const b of buttons) b.disabled = true;
    replace(actionMessage, h("p", { class: "muted" }, "Working…"));
    try {
      const detail = await call();
      if (stopped) return;
      applyJob(detail);
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

  applyJob(job);
  return () => {
    stopped = true;
    feed.close();
    if (timer !== undefined) clearTimeout(timer);
    if (flushTimer !== undefined) clearTimeout(flushTimer);
  };
};

/** The group with the state a `group` event gave it, or null when there is nothing to show. */
function withGroupState(group: JobGroup, state: string): JobGroup | null {
  if (!GROUP_STATES.has(state) || group.state === state) return null;
  return { ...group, state: state as JobGroup["state"] };
}

/** The group with the state a `step` event gave one of its steps (or rollback steps). */
function withStepState(group: JobGroup, seq: number | null | undefined, state: string): JobGroup | null {
  if (seq === null || seq === undefined || !STEP_STATES.has(state)) return null;
  const patch = (steps: JobStep[]): JobStep[] | null => {
    const at = steps.findIndex((s) => s.seq === seq);
    const step = steps[at];
    if (!step || step.state === state) return null;
    const next = steps.slice();
    next[at] = { ...step, state: state as JobStep["state"] };
    return next;
  };
  const steps = patch(group.steps);
  if (steps) return { ...group, steps };
  const rollback = group.rollback ? patch(group.rollback) : null;
  return rollback ? { ...group, rollback } : null;
}

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

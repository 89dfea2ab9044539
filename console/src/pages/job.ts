// The jobs: a paged list, and one job as it runs. The job page reads the whole job once, then
// follows the live feed: every event is listed (by its sequence number), shown at once where it
// says enough (a group's or a step's new state, the job's state), and the groups it names are
// re-read one by one, so following a 1,000-group job costs what moved, not the job's size.
import { api, ok, problemView, type Schemas } from "../api";
import type { Page } from "../app";
import { badge, confirmAction, h, link, loading, replace, seconds, stat, stateClass, table, time } from "../dom";
import { openFeed, type FeedStatus, type JobEvent } from "../events";
import { pagedList } from "./cluster-common";
import { GroupView, TaskNodes } from "./job-groups";
import {
  FINISHED_GROUP,
  FINISHED_JOB,
  clockTime,
  downtimeSeconds,
  findingList,
  type JobDetail,
  type JobGroup,
  type JobStep,
} from "./job-view";

const PAGE = 50;
/** Re-reads start at most this often; the events of a burst are folded into one round. */
const REFRESH_MS = 300;
/** Groups re-read at the same time. */
const READS_AT_ONCE = 6;
/** Events kept in the page's list, newest first. */
const EVENTS_SHOWN = 2000;
/** A failed re-read is tried again after this, doubling up to RETRY_MAX_MS while it keeps failing. */
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 10_000;

export const jobsPage: Page = (root, ctx) => {
  let stopped = false;
  const results = h("div", { "aria-live": "polite" });
  replace(
    root,
    h("div", { class: "row spread" }, h("h1", null, "Jobs"), h("p", null, link("/plan", ctx.can("operator") ? "Plan a migration" : "Plan a migration (view only)"))),
    results,
  );
  // The API lists jobs oldest first and cannot reverse that cheaply, so the caption says so.
  void pagedList(
    results,
    (cursor) => ok(api.GET("/v1/jobs", { params: { query: { limit: PAGE, cursor } } })),
    jobTable,
    { empty: "No job yet.", noun: "jobs", pageSize: PAGE, stopped: () => stopped },
  ).reload();
  return () => {
    stopped = true;
  };
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
      "Jobs, oldest first",
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
    ...entries.map(([state, n]) => h("span", { class: `badge state-${stateClass(state)}` }, `${n} ${state}`)),
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
  replace(root, h("h1", null, "Job"), loading());
  let job: JobDetail = await ok(api.GET("/v1/jobs/{id}", { params: { path: { id } } }));
  /**
   * The job's newest event when the page last read it whole: what events up to it changed is in
   * that read, so replayed when the feed opens, they are listed but not applied or re-read.
   */
  let shownThrough = job.event_seq;
  const operator = ctx.can("operator");
  let stopped = false;

  // Focus lands on the title when the control just pressed is gone and none replaces it.
  const title = h("h1", { class: "job-title", tabindex: -1 });
  const meta = h("p", { class: "muted job-meta" });
  const feedStatus = h("span", { class: "feed", role: "status", "data-feed": "connecting" }, FEED_TEXT.connecting);
  const refreshProblem = h("div");
  // A control's progress is a polite status; its failure a problem, which is an alert by itself.
  const actionStatus = h("p", { class: "muted", role: "status" });
  const actionProblem = h("div");
  const stats = h("div", { class: "row job-stats" });
  const attention = h("p", { class: "notice", hidden: true });
  const findings = h("div");

  // Job controls: built for operators only, shown when the job's state allows them.
  const button = (label: string, onclick: () => void, cls = "") => h("button", { type: "button", class: cls, onclick }, label);
  const controls = operator
    ? {
        approve: button("Approve all groups", () => void approve(null), "primary"),
        pause: button("Pause", () => void setState("pause")),
        resume: button("Resume", () => void setState("resume")),
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
  const taskNodes = new TaskNodes();
  job.groups.forEach((group, index) => {
    const view = new GroupView(id, group, operator ? { approve: (g) => void approve(g), retry: (g) => void retry(g) } : null, index, taskNodes);
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
    actionStatus,
    actionProblem,
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
      stat(`${identical}/${expected}`, "shares verified"),
      stat(downNow, "groups down now"),
      stat(seconds(job.groups.reduce((n, g) => n + (downtimeSeconds(g) ?? 0), 0)), "downtime so far"),
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
      // Who approved every group, and when, is in the job: approvals are rare, so it is read
      // whole, unless this page's own approval is under way, whose answer is that whole job.
      if (!acting) {
        wholeWanted = true;
        schedule();
      }
      return;
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
  /** While re-reads fail, the next round waits until `retryAt`, `backoff` later each time. */
  let backoff = 0;
  let retryAt = 0;
  function schedule(): void {
    if (stopped || busy || timer !== undefined || (!wholeWanted && dirty.size === 0)) return;
    const now = Date.now();
    timer = setTimeout(() => void round(), Math.max(0, lastRound + REFRESH_MS - now, retryAt - now));
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
    // The page keeps what it last read; what failed is read again on its own after a pause that
    // grows while the server keeps failing, so a quiet job does not keep a stale banner.
    for (const name of failed) dirty.add(name);
    if (wholeFailed) wholeWanted = true;
    if (failure) {
      backoff = backoff ? Math.min(backoff * 2, RETRY_MAX_MS) : RETRY_FIRST_MS;
      retryAt = Date.now() + backoff;
      replace(refreshProblem, h("div", { class: "stale" }, h("p", null, "Showing what was last read: the job could not be refreshed."), problemView(failure)));
    } else {
      backoff = 0;
      retryAt = 0;
      replace(refreshProblem);
    }
    schedule();
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

  let acting = false;
  /**
   * Runs a control. `pressed` is the button used: when the job's new state hides it, the
   * keyboard moves to `instead()` (the control that replaced it), else to the title.
   */
  async function act(done: string, call: () => Promise<JobDetail>, pressed?: HTMLButtonElement | null, instead?: () => HTMLElement | null): Promise<void> {
    const buttons = controls ? Object.values(controls) : [];
    for (const b of buttons) b.disabled = true;
    acting = true;
    actionStatus.className = "muted";
    actionStatus.textContent = "Working…";
    replace(actionProblem);
    try {
      const detail = await call();
      if (stopped) return;
      applyJob(detail);
      actionStatus.className = "done";
      actionStatus.textContent = `${done}.`;
    } catch (error) {
      actionStatus.textContent = "";
      replace(actionProblem, problemView(error));
    } finally {
      acting = false;
      for (const b of buttons) b.disabled = false;
    }
    if (stopped || !pressed) return;
    const lost = document.activeElement === pressed || document.activeElement === document.body || !document.activeElement;
    if (!lost) return;
    if (!pressed.hidden && pressed.isConnected) pressed.focus();
    else (instead?.() ?? title).focus();
  }

  /** The control shown in place of one the job's state hid: Resume for Pause and back, else the first shown. */
  function nextControl(pressed: HTMLButtonElement | undefined): HTMLElement | null {
    if (!controls) return null;
    const partner = pressed === controls.pause ? controls.resume : pressed === controls.resume ? controls.pause : null;
    return [partner, controls.approve, controls.pause, controls.resume, controls.cancel].find((b) => b && !b.hidden) ?? null;
  }

  /** A group's row when its own button is gone: the keyboard stays on that group. */
  function groupButton(group: string, which: "approve" | "retry"): HTMLButtonElement | null {
    return views.get(group)?.actionButton(which) ?? null;
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
    await act(
      group ? `Approved ${group}` : "Approved every group",
      () => ok(api.POST("/v1/jobs/{id}/approve", { params: { path: { id } }, body: group ? { group } : {} })),
      group ? groupButton(group, "approve") : controls?.approve,
      () => (group ? (views.get(group)?.nameButton ?? null) : nextControl(controls?.approve)),
    );
  }

  async function retry(group: string): Promise<void> {
    const sure = await confirmAction(
      `Retry ${group}?`,
      "The group resumes at its failed step, or after a rollback at the start of its cutover: its shares go offline again (downtime).",
      `Retry ${group}`,
    );
    if (!sure) return;
    await act(
      `Retried ${group}`,
      () => ok(api.POST("/v1/jobs/{id}/groups/{group}/retry", { params: { path: { id, group } } })),
      groupButton(group, "retry"),
      () => views.get(group)?.nameButton ?? null,
    );
  }

  /** Pause or Resume: the button hides itself, so the keyboard moves to the one shown instead. */
  async function setState(verb: "pause" | "resume"): Promise<void> {
    const pressed = verb === "pause" ? controls?.pause : controls?.resume;
    await act(
      verb === "pause" ? "Paused" : "Resumed",
      () =>
        ok(
          verb === "pause"
            ? api.POST("/v1/jobs/{id}/pause", { params: { path: { id } } })
            : api.POST("/v1/jobs/{id}/resume", { params: { path: { id } } }),
        ),
      pressed,
      () => nextControl(pressed),
    );
  }

  async function cancel(): Promise<void> {
    const cutting = job.groups.filter((g) => g.state === "cutting_over").length;
    const sure = await confirmAction(
      "Cancel this job?",
      `Groups not yet in their cutover stop where they are${cutting ? `; ${cutting} ${cutting === 1 ? "group" : "groups"} in cutover roll back to ${job.request.source}, offline until the rollback ends` : ""}. This cannot be undone.`,
      "Cancel the job",
    );
    if (!sure) return;
    await act(
      "Cancelling",
      () => ok(api.POST("/v1/jobs/{id}/cancel", { params: { path: { id } } })),
      controls?.cancel,
      () => nextControl(controls?.cancel),
    );
  }

  applyJob(job);
  return () => {
    stopped = true;
    feed.close();
    if (timer !== undefined) clearTimeout(timer);
    if (flushTimer !== undefined) clearTimeout(flushTimer);
    taskNodes.close();
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
    { "data-seq": event.seq, class: `event event-${stateClass(event.state)}` },
    h("time", { datetime: event.at, title: event.at }, clockTime(event.at)),
    " ",
    h("span", { class: "where" }, where),
    " ",
    badge(event.state),
    event.message ? h("span", { class: "message" }, ` ${event.message}`) : null,
  );
}

function cutoverEstimate(group: JobGroup): number {
  return group.steps.filter((s) => s.phase === "cutover" && s.state !== "succeeded").reduce((n, s) => n + s.estimate_seconds, 0);
}

// One group of a job, twice: a row of the summary table (state, current step, downtime,
// verification, its own controls) and an expandable detail (the step timeline with attempts,
// errors and each step's log). Both are built once and updated in place when the group's
// version changes, so a 300-group job redraws only the groups that moved.
import { api, ok, problemView, type Schemas } from "../api";
import { badge, h, none, replace, seconds, stateClass, time } from "../dom";
import {
  FINISHED_GROUP,
  clockTime,
  currentStep,
  downtimeText,
  isFinishedStep,
  stepName,
  took,
  verificationText,
  type JobGroup,
  type JobStep,
} from "./job-view";

export interface GroupActions {
  approve(group: string): void;
  retry(group: string): void;
}

const LOG_PAGE = 100;

const STEP_HEADERS = ["#", "Step", "Phase", "Cluster", "Node", "State", "Attempt", "Started", "Finished", "Took", "Log"];

/**
 * Node names of tasks (a step's node is its task's), owned by one job page and closed when the
 * page goes. One read per task however many redraws ask at once; a failed read is forgotten so
 * a later redraw asks again.
 */
export class TaskNodes {
  private readonly reads = new Map<string, Promise<string>>();
  private closed = false;

  /** The task's node, or null once the page has gone. */
  node(task: string): Promise<string> | null {
    if (this.closed) return null;
    let read = this.reads.get(task);
    if (!read) {
      const asked = ok(api.GET("/v1/tasks/{id}", { params: { path: { id: task } } })).then((t) => t.node);
      read = asked;
      this.reads.set(task, asked);
      asked.catch(() => {
        if (this.reads.get(task) === asked) this.reads.delete(task);
      });
    }
    return read;
  }

  close(): void {
    this.closed = true;
    this.reads.clear();
  }
}

export class GroupView {
  readonly row: HTMLTableRowElement;
  readonly details: HTMLDetailsElement;
  private readonly cells: HTMLTableCellElement[];
  private readonly summaryState: HTMLElement;
  private readonly summaryText: HTMLElement;
  private readonly body: HTMLElement;
  private readonly approveButton: HTMLButtonElement | null;
  private readonly retryButton: HTMLButtonElement | null;
  /** The group's name in its row, which opens its detail. */
  readonly nameButton: HTMLButtonElement;
  private group: JobGroup;
  /** An approval given to every group of the job at once. */
  jobApproval: Schemas["Approval"] | null = null;
  private seen = "";
  private steps: StepView[] = [];
  private rollback: StepView[] = [];
  private built = false;
  private readonly info = h("div", { class: "group-info" });
  private readonly stepBody = h("tbody");
  private readonly rollbackBox = h("div");

  constructor(
    private readonly jobId: string,
    group: JobGroup,
    actions: GroupActions | null,
    index: number,
    private readonly taskNodes: TaskNodes,
  ) {
    this.group = group;
    const id = `group-${index}`;
    this.nameButton = h(
      "button",
      { type: "button", class: "link", "aria-controls": id, onclick: () => this.reveal() },
      group.name,
    );
    this.cells = Array.from({ length: 6 }, () => h("td"));
    this.cells[0]?.append(this.nameButton);
    this.approveButton = actions
      ? h("button", { type: "button", onclick: () => actions.approve(this.group.name) }, "Approve")
      : null;
    this.retryButton = actions ? h("button", { type: "button", onclick: () => actions.retry(this.group.name) }, "Retry") : null;
    this.approveButton?.setAttribute("aria-label", `Approve ${group.name}`);
    this.retryButton?.setAttribute("aria-label", `Retry ${group.name}`);
    this.row = h("tr", { "data-group": group.name }, ...this.cells);
    if (actions) this.row.append(h("td", { class: "actions" }, this.approveButton, this.retryButton));

    this.summaryState = h("span");
    this.summaryText = h("span", { class: "muted" });
    this.body = h("div", { class: "group-body" });
    this.details = h(
      "details",
      { class: "job-group", id, "data-group": group.name },
      h("summary", null, h("b", null, group.name), " ", this.summaryState, " ", this.summaryText),
      this.body,
    );
    this.details.addEventListener("toggle", () => {
      if (this.details.open) this.build();
    });
    this.update(group, true);
  }

  get name(): string {
    return this.group.name;
  }

  get state(): string {
    return this.group.state;
  }

  /** The row's own Approve or Retry button (operators only). */
  actionButton(which: "approve" | "retry"): HTMLButtonElement | null {
    return which === "approve" ? this.approveButton : this.retryButton;
  }

  /** The group as this view shows it. */
  get current(): JobGroup {
    return this.group;
  }

  /**
   * Shows what an event said before the server's copy is re-read. The next `update` redraws
   * even when the re-read document has the version this one was patched over: that document
   * wins.
   */
  preview(group: JobGroup): void {
    this.update(group, true);
    this.seen = "";
  }

  /** The job's approval of every group, shown in an open detail. */
  setJobApproval(approval: Schemas["Approval"] | null): void {
    if (approval?.at === this.jobApproval?.at && approval?.by === this.jobApproval?.by) return;
    this.jobApproval = approval;
    if (this.built) this.refreshBody();
  }

  /** Redraws what this group shows when the server's copy moved on. */
  update(group: JobGroup, force = false): void {
    const key = `${group.version ?? ""}|${group.state}|${group.updated_at ?? ""}|${group.downtime_ended_at ?? ""}`;
    if (!force && key === this.seen) return;
    this.seen = key;
    this.group = group;
    const step = currentStep(group);
    const done = group.steps.filter(isFinishedStep).length;
    const [, state, current, downtime, verification, retries] = this.cells;
    this.row.className = `group-row state-row-${stateClass(group.state)}`;
    this.row.dataset.state = group.state;
    if (state) replace(state, badge(group.state));
    if (current) {
      replace(
        current,
        FINISHED_GROUP.has(group.state) && group.state === "succeeded"
          ? h("span", { class: "muted" }, `all ${group.steps.length} steps done`)
          : step
            ? h(
                "span",
                null,
                `${step.seq}. ${stepName(step)} `,
                badge(step.state),
                h("span", { class: "muted" }, ` on ${step.cluster}`),
                step.attempt > 1 ? h("span", { class: "retry-mark" }, ` attempt ${step.attempt}/${step.max_attempts}`) : null,
              )
            : "—",
        h("div", { class: "muted job-note" }, `${done}/${group.steps.length} steps`),
        group.error ? h("div", { class: "group-error" }, group.error) : null,
      );
    }
    if (downtime) {
      downtime.className = group.downtime_started_at && !group.downtime_ended_at ? "down-now" : "";
      replace(downtime, downtimeText(group));
    }
    if (verification) {
      verification.className = group.verification ? (group.verification.passed ? "verified" : "not-verified") : "muted";
      replace(verification, verificationText(group));
    }
    if (retries) {
      const retried = group.steps.filter((s) => s.attempt > 1).map((s) => `${stepName(s)} ×${s.attempt}`);
      replace(retries, String(group.retries ?? 0), retried.length ? h("div", { class: "muted job-note" }, retried.join(", ")) : null);
    }
    if (this.approveButton) this.approveButton.hidden = group.state !== "awaiting_approval";
    if (this.retryButton) this.retryButton.hidden = !["failed", "rolled_back"].includes(group.state);
    replace(this.summaryState, badge(group.state));
    replace(
      this.summaryText,
      step && group.state !== "succeeded" ? `at ${step.seq}. ${stepName(step)} · ` : "",
      verificationText(group),
      ` · downtime ${downtimeText(group)}`,
    );
    if (this.built) this.refreshBody();
  }

  /** Opens the detail and moves the keyboard there. */
  reveal(): void {
    this.details.open = true;
    this.build();
    const summary = this.details.querySelector("summary");
    summary?.focus();
    summary?.scrollIntoView({ block: "start" });
  }

  private build(): void {
    if (this.built) return;
    this.built = true;
    const logBox = h("div");
    const groupLog = h("button", { type: "button", "aria-expanded": "false" }, "Show the group's log");
    groupLog.addEventListener("click", () => toggleLog(groupLog, logBox, this.jobId, this.group.name, null));
    replace(
      this.body,
      this.info,
      h("h4", null, "Steps"),
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { class: "steps" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              ...STEP_HEADERS.map((c) => h("th", { scope: "col" }, c)),
            ),
          ),
          this.stepBody,
        ),
      ),
      this.rollbackBox,
      h("div", { class: "row" }, groupLog),
      logBox,
    );
    this.refreshBody();
  }

  private refreshBody(): void {
    const g = this.group;
    const v = g.verification;
    replace(
      this.info,
      h(
        "dl",
        { class: "job-facts" },
        fact("Route", g.route.join(" → ")),
        fact("Source disk", g.context?.source_disk ?? "—"),
        fact("Drive", g.context?.drive_letter ?? "—"),
        fact("Interim disk", g.context?.interim_disk ?? "—"),
        fact("Shares at preparation", g.context?.baseline_shares ?? "—"),
        fact("Downtime", downtimeText(g)),
        fact("Down from", time(g.downtime_started_at)),
        fact("Back at", time(g.downtime_ended_at)),
        fact(
          "Approval",
          g.approval
            ? `by ${g.approval.by} at ${clockTime(g.approval.at)}`
            : this.jobApproval
              ? `every group, by ${this.jobApproval.by} at ${clockTime(this.jobApproval.at)}`
              : "—",
        ),
        fact("Retries", String(g.retries ?? 0)),
      ),
      g.error ? h("div", { class: "problem" }, h("strong", null, "Stopped: "), g.error) : null,
      v
        ? h(
            "div",
            { class: v.passed ? "job-verification ok" : "job-verification bad" },
            h("strong", null, `${v.identical}/${v.expected} shares identical on ${v.cluster}`),
            v.network_name_online ? ", network name online" : ", network name NOT online",
            listOf("Missing", v.missing),
            listOf("Changed", v.changed.map((c) => `${c.share} (${c.fields.join(", ")})`)),
            listOf("Unexpected", v.unexpected),
            listOf("Lost on the lossy route (recreate by hand)", v.lost ?? []),
          )
        : null,
    );
    this.steps = syncSteps(this.steps, g.steps, this.stepBody, this.jobId, g.name);
    if (g.rollback && g.rollback.length) {
      if (!this.rollbackBox.firstChild) {
        const body = h("tbody");
        this.rollbackBox.append(
          h("h4", null, "Rollback"),
          h(
            "div",
            { class: "scroll" },
            h(
              "table",
              { class: "steps" },
              h("caption", null, "Rollback steps, undoing the cutover"),
              h("thead", null, h("tr", null, ...STEP_HEADERS.map((c) => h("th", { scope: "col" }, c)))),
              body,
            ),
          ),
        );
      }
      const body = this.rollbackBox.querySelector("tbody") as HTMLElement;
      this.rollback = syncSteps(this.rollback, g.rollback, body, this.jobId, g.name);
    }
    void this.learnNodes();
  }

  /** Fills the node column from each step's task, asked once per task. */
  private async learnNodes(): Promise<void> {
    for (const view of [...this.steps, ...this.rollback]) {
      const task = view.step.task_id;
      if (!task) continue;
      const read = this.taskNodes.node(task);
      if (!read) return;
      try {
        view.showNode(await read);
      } catch {
        // The column keeps what the step's own output said; a later redraw asks again.
      }
    }
  }
}

function syncSteps(views: StepView[], steps: JobStep[], body: HTMLElement, jobId: string, group: string): StepView[] {
  const next: StepView[] = [];
  for (const step of steps) {
    let view = views.find((v) => v.step.seq === step.seq);
    if (!view) {
      view = new StepView(step, jobId, group);
      body.append(view.row, view.errorRow, view.logRow);
    } else {
      view.update(step);
    }
    next.push(view);
  }
  return next;
}

class StepView {
  readonly row: HTMLTableRowElement;
  readonly errorRow: HTMLTableRowElement;
  readonly logRow: HTMLTableRowElement;
  private readonly cells: HTMLTableCellElement[];
  private readonly errorCell: HTMLTableCellElement;
  private seen = "";

  constructor(
    public step: JobStep,
    jobId: string,
    group: string,
  ) {
    this.cells = Array.from({ length: 10 }, () => h("td"));
    const logButton = h("button", { type: "button", class: "job-small", "aria-expanded": "false", "aria-label": `Log of step ${step.seq} of ${group}` }, "Log");
    const logCell = h("td", { colspan: 11 });
    logButton.addEventListener("click", () => toggleLog(logButton, logCell, jobId, group, step.seq, this.logRow));
    this.row = h("tr", null, ...this.cells, h("td", null, logButton));
    this.errorCell = h("td", { colspan: 11, class: "step-error" });
    this.errorRow = h("tr", { class: "step-extra", hidden: true }, this.errorCell);
    this.logRow = h("tr", { class: "step-extra", hidden: true }, logCell);
    this.update(step);
  }

  update(step: JobStep): void {
    const key = `${step.state}|${step.attempt}|${step.started_at ?? ""}|${step.finished_at ?? ""}|${step.error ?? ""}|${step.next_attempt_at ?? ""}`;
    this.step = step;
    if (key === this.seen) return;
    this.seen = key;
    const [seq, name, phase, cluster, node, state, attempt, started, finished, duration] = this.cells;
    this.row.className = `step state-row-${stateClass(step.state)}${step.attempt > 1 ? " retried" : ""}`;
    this.row.dataset.step = String(step.seq);
    seq && replace(seq, String(step.seq));
    name && replace(name, stepName(step), step.peer ? h("span", { class: "muted" }, ` from ${step.peer}`) : null);
    phase && replace(phase, h("span", { class: `step-phase step-phase-${stateClass(step.phase)}` }, step.phase));
    cluster && replace(cluster, step.cluster);
    if (node && !node.textContent) {
      const owner = (step.output as Record<string, unknown> | null | undefined)?.["owner_node"];
      replace(node, typeof owner === "string" ? owner : "");
    }
    state && replace(state, badge(step.state));
    attempt &&
      replace(
        attempt,
        `${step.attempt}/${step.max_attempts}`,
        step.attempt > 1 ? h("span", { class: "badge state-retrying" }, `retried ${step.attempt - 1}×`) : null,
      );
    started && replace(started, clockTime(step.started_at));
    finished && replace(finished, clockTime(step.finished_at));
    duration && replace(duration, seconds(took(step.started_at, step.finished_at)));
    const notes: (string | HTMLElement)[] = [];
    if (step.error) notes.push(h("span", null, h("strong", null, step.state === "failed" ? "Failed: " : "Last attempt failed: "), step.error));
    if (step.next_attempt_at) notes.push(h("span", { class: "muted" }, ` next attempt at ${clockTime(step.next_attempt_at)}`));
    this.errorRow.hidden = notes.length === 0;
    replace(this.errorCell, ...notes);
  }

  showNode(node: string): void {
    const cell = this.cells[4];
    if (cell && node && cell.textContent !== node) replace(cell, node);
  }
}

/** Shows or hides a log, fetched (and paged) from the server when shown. */
function toggleLog(button: HTMLButtonElement, box: HTMLElement, jobId: string, group: string, step: number | null, row?: HTMLElement): void {
  const open = button.getAttribute("aria-expanded") !== "true";
  button.setAttribute("aria-expanded", String(open));
  if (row) row.hidden = !open;
  if (!open) {
    replace(box);
    return;
  }
  const list = h("ol", { class: "log" });
  // One More button that stays in place while pages remain, so the keyboard stays on it.
  let cursor: string | undefined;
  let loading = false;
  const moreButton = h("button", { type: "button", class: "log-more", hidden: true, onclick: () => void load() }, "More");
  const status = h("div");
  const more = h("div", null, moreButton, status);
  replace(box, list, more);
  const load = async () => {
    if (loading) return;
    loading = true;
    moreButton.setAttribute("aria-disabled", "true");
    replace(status, h("span", { class: "muted" }, "Loading…"));
    const before = list.children.length;
    try {
      const page = await ok(
        api.GET("/v1/jobs/{id}/logs", {
          params: { path: { id: jobId }, query: { group, step: step ?? undefined, limit: LOG_PAGE, cursor } },
        }),
      );
      for (const line of page.items) {
        list.append(
          h(
            "li",
            { class: `log-${stateClass(line.state)}` },
            h("time", { datetime: line.at, title: line.at }, clockTime(line.at)),
            " ",
            line.step !== null && line.step !== undefined && step === null ? `step ${line.step} ` : "",
            badge(line.state),
            line.message ? ` ${line.message}` : "",
          ),
        );
      }
      replace(status);
      if (!list.children.length) list.replaceWith(none("No log line yet."));
      cursor = page.next ?? undefined;
      if (!cursor && !moreButton.hidden && document.activeElement === moreButton) {
        // The button goes with the last page: the keyboard moves to the first line it brought.
        const first = list.children[before] as HTMLElement | undefined;
        first?.setAttribute("tabindex", "-1");
        first?.focus();
      }
      moreButton.hidden = !cursor;
    } catch (error) {
      replace(status, problemView(error));
    } finally {
      loading = false;
      moreButton.removeAttribute("aria-disabled");
    }
  };
  void load();
}

function fact(term: string, value: string | number | Node): HTMLElement {
  return h("div", null, h("dt", null, term), h("dd", null, value));
}

function listOf(title: string, items: string[]): HTMLElement | null {
  if (!items.length) return null;
  return h("div", null, h("strong", null, `${title} (${items.length}): `), items.join(", "));
}

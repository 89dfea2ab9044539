// Plan and submit a migration: the job request as a form, the plan the server makes of it
// (route, the refused direct hop and why, each group's steps and estimates, the findings), then
// the job. A viewer may plan; only an operator is offered "Submit".
import { api, newIdempotencyKey, ok, problemView, type Schemas } from "../api";
import type { Page } from "../app";
import { badge, confirmAction, field, h, loading, none, replace, seconds, stat, table } from "../dom";
import { findingList, worstFinding } from "./job-view";
import { diskRow, intervalRow, recurringRow, zoneDatalist, type DiskRow, type WindowRow } from "./plan-form";

type JobRequest = Schemas["JobRequest"];
type Plan = Schemas["Plan"];
type GroupPlan = Schemas["GroupPlan"];

const GROUP_PAGE = 500;

export const planPage: Page = async (root, ctx) => {
  replace(root, h("h1", null, "Plan a migration"), loading());
  const clusters = (await ok(api.GET("/v1/clusters", { params: { query: { limit: 1000 } } }))).items;
  if (clusters.length < 2) {
    replace(root, h("h1", null, "Plan a migration"), none("A migration needs two registered clusters: `ferry cluster create`."));
    return;
  }
  const canSubmit = ctx.can("operator");

  const clusterOptions = (selected: string) =>
    clusters.map((c) => h("option", { value: c.name, selected: c.name === selected }, `${c.name} (${c.os})`));
  const source = h("select", { name: "source", required: true }, ...clusterOptions(ctx.query.get("source") ?? clusters[0]?.name ?? ""));
  const target = h("select", { name: "target", required: true }, ...clusterOptions(ctx.query.get("target") ?? clusters[clusters.length - 1]?.name ?? ""));
  const interim = h("select", { name: "interim" }, h("option", { value: "" }, "chosen by the planner"), ...clusterOptions(""));
  const name = h("input", { type: "text", name: "name", placeholder: "source -> target", maxlength: 255 });
  const requireApproval = h("input", { type: "checkbox", name: "require_approval", checked: true });
  const allowLossy = h("input", { type: "checkbox", name: "allow_lossy" });

  // Groups: the source's groups from its newest snapshot, paged by the server.
  const groupList = h("div", { class: "plan-groups" });
  const groupMore = h("div");
  const groupsBox = h(
    "fieldset",
    null,
    h("legend", null, "Groups"),
    h("p", { class: "muted" }, "Tick the groups to move; none ticked moves every group of the source."),
    groupList,
    groupMore,
  );
  let groupsTicket = 0;
  async function loadGroups(cursor?: string): Promise<void> {
    const ticket = cursor ? groupsTicket : ++groupsTicket;
    const cluster = clusters.find((c) => c.name === source.value);
    if (!cursor) replace(groupList, h("p", { class: "muted" }, "Loading groups…"));
    replace(groupMore);
    if (!cluster) return;
    try {
      const page = await ok(
        api.GET("/v1/clusters/{id}/groups", { params: { path: { id: cluster.id }, query: { limit: GROUP_PAGE, cursor } } }),
      );
      if (ticket !== groupsTicket) return;
      if (!cursor) replace(groupList);
      for (const g of page.items) {
        groupList.append(
          h(
            "label",
            { class: "check" },
            h("input", { type: "checkbox", name: "group", value: g.name }),
            h("span", null, g.name),
            h("span", { class: "muted" }, ` ${g.share_count} shares${g.owner_node ? `, on ${g.owner_node}` : ""}`),
          ),
        );
      }
      if (!groupList.children.length) replace(groupList, none("The source's newest snapshot has no group (discover it first)."));
      if (page.next) {
        const next = page.next;
        replace(groupMore, h("button", { type: "button", onclick: () => void loadGroups(next) }, "More groups"));
      }
    } catch (error) {
      if (ticket === groupsTicket) replace(groupList, problemView(error));
    }
  }

  // Cutover windows and the disk mapping: rows added and removed by the person.
  const windows: WindowRow[] = [];
  const windowList = h("div");
  const removeWindow = (row: HTMLElement) => {
    const at = windows.findIndex((w) => w.element === row);
    if (at >= 0) windows.splice(at, 1);
    row.remove();
    changed();
  };
  const addWindow = (make: typeof recurringRow) => {
    const row = make(removeWindow);
    windows.push(row);
    windowList.append(row.element);
    row.element.querySelector("input")?.focus();
    changed();
  };
  const windowsBox = h(
    "fieldset",
    null,
    h("legend", null, "Cutover windows"),
    h("p", { class: "muted" }, "When groups may go offline; none means any time."),
    windowList,
    h(
      "div",
      { class: "row" },
      h("button", { type: "button", onclick: () => addWindow(recurringRow) }, "Add a recurring window"),
      h("button", { type: "button", onclick: () => addWindow(intervalRow) }, "Add a one-off window"),
    ),
    zoneDatalist(),
  );

  const disks: DiskRow[] = [];
  const diskList = h("div");
  const removeDisk = (row: HTMLElement) => {
    const at = disks.findIndex((d) => d.element === row);
    if (at >= 0) disks.splice(at, 1);
    row.remove();
    changed();
  };
  const addDisk = () => {
    const row = diskRow(removeDisk);
    disks.push(row);
    diskList.append(row.element);
    return row;
  };
  addDisk();
  const disksBox = h(
    "fieldset",
    null,
    h("legend", null, "Disk mapping"),
    h("p", { class: "muted" }, "Each source disk, and the name the target gives the same LUN once presented. A disk not listed keeps its name."),
    diskList,
    h("button", { type: "button", onclick: () => addDisk().source.focus() }, "Add a disk"),
  );

  const number = (nameAttr: string, min: number, max: number, placeholder: string) =>
    h("input", { type: "number", name: nameAttr, min, max, placeholder, class: "short" });
  const maxActive = number("max_active_groups", 1, 4294967295, "4");
  const maxCutovers = number("max_cluster_cutovers", 1, 4294967295, "2");
  const backoff = number("retry_backoff_seconds", 0, 3600, "per step kind");
  const approvalTtl = number("approval_ttl_minutes", 1, 129600, "until used");
  const skeletonDepth = number("skeleton_depth", 1, 64, "deep enough");
  const overrideReason = h("textarea", { name: "validation_override", rows: 2, maxlength: 1000 });

  const limitsBox = h(
    "fieldset",
    null,
    h("legend", null, "Limits"),
    h(
      "div",
      { class: "plan-limits" },
      field("Groups in progress at once", maxActive),
      field("Cutovers at once per cluster", maxCutovers),
      field("Pause before a retry (s)", backoff),
      field("Approval valid for (minutes)", approvalTtl),
    ),
  );
  const advanced = h(
    "details",
    { class: "plan-advanced" },
    h("summary", null, "More options"),
    field("Interim cluster", interim),
    field("Skeleton copy depth", skeletonDepth, "Directory levels, the drive root being 1."),
    h("label", { class: "check" }, allowLossy, "Allow a lossy direct hop when no lossless route exists"),
    field("Run although a validation report fails: the reason (audited)", overrideReason),
  );

  const planButton = h("button", { type: "submit", class: "primary" }, "Plan");
  const form = h(
    "form",
    { class: "plan-form", "aria-labelledby": "plan-title", novalidate: true },
    h("div", { class: "plan-clusters" }, field("Source cluster", source), field("Target cluster", target), field("Job name", name, "Optional")),
    h("label", { class: "check" }, requireApproval, "Require approval before each group's cutover"),
    groupsBox,
    windowsBox,
    limitsBox,
    disksBox,
    advanced,
    h("div", { class: "row" }, planButton),
  );
  const result = h("div", { class: "plan-result", "aria-live": "polite" });

  function request(): JobRequest {
    const body: JobRequest = { source: source.value, target: target.value, require_approval: requireApproval.checked };
    const optional = (input: HTMLInputElement, scale = 1): number | undefined =>
      input.value.trim() === "" ? undefined : Math.round(Number(input.value) * scale);
    if (name.value.trim()) body.name = name.value.trim();
    if (interim.value) body.interim = interim.value;
    const groups = [...groupList.querySelectorAll<HTMLInputElement>("input[name=group]:checked")].map((i) => i.value);
    if (groups.length) body.groups = groups;
    if (windows.length) body.windows = windows.map((w) => w.read());
    const mapping: Record<string, string> = {};
    for (const d of disks) {
      const from = d.source.value.trim();
      const to = d.target.value.trim();
      // A half-filled row is sent as is, so the server names the disk that lacks its pair.
      if (from || to) mapping[from] = to;
    }
    if (Object.keys(mapping).length) body.disk_mapping = mapping;
    if (allowLossy.checked) body.allow_lossy = true;
    body.max_active_groups = optional(maxActive);
    body.max_cluster_cutovers = optional(maxCutovers);
    body.retry_backoff_seconds = optional(backoff);
    body.approval_ttl_seconds = optional(approvalTtl, 60);
    body.skeleton_depth = optional(skeletonDepth);
    if (overrideReason.value.trim()) body.validation_override = { reason: overrideReason.value.trim() };
    return body;
  }

  // The plan shown is the plan of the form as it was: any edit makes it stale, and a stale plan
  // cannot be submitted, so what runs is always what was read.
  let shown: { request: JobRequest; key: string; submit: HTMLButtonElement | null; stale: HTMLElement } | null = null;
  function changed(): void {
    if (!shown) return;
    shown.submit?.setAttribute("disabled", "");
    shown.stale.hidden = false;
  }
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  source.addEventListener("change", () => void loadGroups());

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = request();
    planButton.disabled = true;
    replace(result, h("p", { class: "muted" }, "Planning…"));
    try {
      const plan = await ok(api.POST("/v1/plans", { body }));
      showPlan(plan, body);
    } catch (error) {
      shown = null;
      replace(result, problemView(error));
    } finally {
      planButton.disabled = false;
    }
  });

  function showPlan(plan: Plan, body: JobRequest): void {
    const stale = h("p", { class: "notice", hidden: true }, "The form changed since this plan: plan again before submitting.");
    const message = h("div", { "aria-live": "assertive" });
    let submit: HTMLButtonElement | null = null;
    if (canSubmit) {
      submit = h("button", { type: "button", class: "primary", disabled: !plan.runnable }, "Submit");
      submit.addEventListener("click", () => void submitJob(submit as HTMLButtonElement, message));
    }
    shown = { request: body, key: newIdempotencyKey(), submit, stale };
    replace(
      result,
      planView(plan),
      h(
        "div",
        { class: "plan-submit" },
        stale,
        canSubmit
          ? h("div", { class: "row" }, submit, plan.runnable ? null : h("span", { class: "muted" }, "A check failed: a job from this request would be refused."))
          : h("p", { class: "muted" }, "Viewers may plan; an operator submits the job."),
        message,
      ),
    );
    result.querySelector("h2")?.scrollIntoView({ block: "start" });
  }

  async function submitJob(button: HTMLButtonElement, message: HTMLElement): Promise<void> {
    if (!shown) return;
    const { request: body, key } = shown;
    if (!body.require_approval) {
      const sure = await confirmAction(
        "Start cutovers without approval?",
        `Without approval each group of ${body.source} goes offline (downtime) as soon as its preparation ends${body.windows?.length ? " inside a cutover window" : ""}.`,
        "Submit the job",
      );
      if (!sure) return;
    }
    button.disabled = true;
    replace(message, h("p", { class: "muted" }, "Submitting…"));
    try {
      // The same key for the same plan: a second click or a retried request makes no second job.
      const job = await ok(api.POST("/v1/jobs", { body, params: { header: { "Idempotency-Key": key } } }));
      ctx.go(`/jobs/${encodeURIComponent(job.id)}`);
    } catch (error) {
      button.disabled = false;
      replace(message, problemView(error));
    }
  }

  replace(
    root,
    h("h1", { id: "plan-title" }, "Plan a migration"),
    h("p", { class: "muted" }, "Planning runs nothing: it shows the route, each group's steps and the checks. ", canSubmit ? "Submit starts the job." : ""),
    h("div", { class: "plan-layout" }, form, result),
  );
  await loadGroups();
};

function planView(plan: Plan): HTMLElement {
  const first = plan.groups[0];
  const detail = first?.route_detail;
  const totalSeconds = plan.groups.reduce((sum, g) => sum + g.estimated_seconds, 0);
  const totalDowntime = plan.groups.reduce((sum, g) => sum + g.estimated_downtime_seconds, 0);
  const worst = worstFinding([...plan.findings, ...plan.groups.flatMap((g) => g.findings)]);
  return h(
    "section",
    { class: "plan-view", "aria-labelledby": "plan-result-title" },
    h("h2", { id: "plan-result-title" }, "Plan ", plan.runnable ? badge("runnable") : badge("refused")),
    h("h3", null, "Route"),
    h(
      "ol",
      { class: "route", "aria-label": "Route" },
      ...plan.route.map((cluster, i) =>
        h(
          "li",
          { class: i === 0 ? "route-source" : i === plan.route.length - 1 ? "route-target" : "route-interim" },
          h(
            "span",
            { class: "route-box" },
            h("b", null, cluster),
            h("span", { class: "muted" }, i === 0 ? " source" : i === plan.route.length - 1 ? " target" : " interim"),
          ),
        ),
      ),
    ),
    plan.refused_direct
      ? h(
          "p",
          { class: "refused" },
          h("strong", null, `Direct hop ${plan.route[0] ?? ""} → ${plan.route[plan.route.length - 1] ?? ""} refused: `),
          plan.refused_direct,
        )
      : h("p", { class: "muted" }, "The route goes straight from source to target."),
    plan.losses.length ? h("p", { class: "problem" }, h("strong", null, "Lossy: "), `this route loses ${plan.losses.join(", ")}.`) : null,
    detail && detail.hops.length
      ? h(
          "div",
          { class: "scroll" },
          table(
            ["Hop", "OS", "Loses", "Why this hop is allowed"],
            detail.hops.map((hop) => [
              `${hop.from_cluster} → ${hop.to_cluster}`,
              `${hop.from_os} → ${hop.to_os}`,
              hop.loses.length ? hop.loses.join(", ") : "nothing",
              h("span", { class: "muted" }, hop.rule_source, hop.min_source_service_pack ? ` (source needs ${hop.min_source_service_pack})` : ""),
            ]),
          ),
        )
      : null,
    h("h3", null, "Estimates"),
    h(
      "div",
      { class: "row" },
      stat(String(plan.groups.length), "groups"),
      stat(seconds(totalSeconds), "work, all groups"),
      stat(seconds(totalDowntime), "downtime, all groups"),
      worst ? stat(worst, "worst finding") : null,
    ),
    h("h3", null, "Findings"),
    plan.findings.length ? findingList(plan.findings) : none("No finding about the job as a whole."),
    h("h3", null, "Groups"),
    plan.groups.length ? groupTable(plan.groups) : none("No group to move."),
    plan.groups.length ? h("h3", null, "Steps of each group") : null,
    ...plan.groups.map(groupSteps),
  );
}


function groupTable(groups: GroupPlan[]): HTMLElement {
  return h(
    "div",
    { class: "scroll" },
    table(
      ["Group", "Route", "Steps", "Estimated", "Downtime", "Findings"],
      groups.map((g) => [
        g.group,
        g.route.join(" → "),
        String(g.steps.length),
        seconds(g.estimated_seconds),
        seconds(g.estimated_downtime_seconds),
        g.findings.length ? findingList(g.findings) : "none",
      ]),
    ),
  );
}

/** A group's steps, built when first opened: a 300-group plan stays quick to show. */
function groupSteps(g: GroupPlan): HTMLElement {
  const details = h(
    "details",
    { class: "plan-steps" },
    h("summary", null, h("b", null, g.group), h("span", { class: "muted" }, ` ${g.steps.length} steps, about ${seconds(g.estimated_seconds)}, downtime about ${seconds(g.estimated_downtime_seconds)}`)),
  );
  let built = false;
  details.addEventListener("toggle", () => {
    if (built || !details.open) return;
    built = true;
    details.append(
      h(
        "div",
        { class: "scroll" },
        table(
          ["#", "Step", "Phase", "Cluster", "Node", "Estimate", "Attempts"],
          g.steps.map((s) => [
            String(s.seq),
            s.kind,
            h("span", { class: `step-phase step-phase-${s.phase}` }, s.phase),
            s.cluster,
            s.node ?? h("span", { class: "muted" }, "no agent connected"),
            seconds(s.estimate_seconds),
            `up to ${s.max_attempts}`,
          ]),
        ),
      ),
    );
  });
  return details;
}

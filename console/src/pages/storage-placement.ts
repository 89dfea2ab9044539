// Load balance for a job: where its groups would go on the target's nodes, each group at the p95
// load it put on the source, every node kept under its capacity less the headroom.
import { api, ok, problemView, type Schemas } from "../api";
import { badge, field, h, none, replace, section, table } from "../dom";
import { rate } from "./storage-chart";

type Job = Schemas["Job"];
type Placement = Schemas["Placement"];

const JOB_PAGE = 100;

export function placementSection(): HTMLElement {
  const jobSelect = h("select", { name: "job", required: true });
  const capacity = h("input", { type: "number", name: "capacity", min: "1", step: "any", value: "5000", required: true });
  const headroom = h("input", { type: "number", name: "headroom", min: "0", max: "100", step: "any", value: "20" });
  const more = h("button", { type: "button", hidden: true }, "More jobs");
  const submit = h("button", { type: "submit", class: "primary" }, "Compute placement");
  const result = h("div", { class: "placement-result", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "row placement-form", "aria-label": "Placement question" },
    field("Job", jobSelect),
    more,
    field("Capacity per node (transfers/s)", capacity),
    field("Headroom (%)", headroom),
    submit,
  );
  const jobs = new Map<string, Job>();
  let next: string | null | undefined;

  async function loadJobs(): Promise<void> {
    try {
      const page = await ok(api.GET("/v1/jobs", { params: { query: { limit: JOB_PAGE, cursor: next ?? undefined } } }));
      for (const job of page.items) {
        jobs.set(job.id, job);
        jobSelect.append(h("option", { value: job.id }, `${job.name} (${job.request.source} → ${job.request.target})`));
      }
      next = page.next;
      more.hidden = !next;
      if (!jobs.size) {
        form.hidden = true;
        replace(result, none("No job yet: plan a migration first, then see where its groups would land."));
      }
    } catch (error) {
      replace(result, problemView(error));
    }
  }

  more.addEventListener("click", () => void loadJobs());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const job = jobs.get(jobSelect.value);
    if (!job) return;
    submit.disabled = true;
    replace(result, h("p", { class: "muted" }, "Computing…"));
    try {
      const answer = await ok(
        api.POST("/v1/perf/placement", {
          body: {
            source_cluster: job.request.source,
            target_cluster: job.request.target,
            capacity: Number(capacity.value),
            headroom_pct: headroom.value === "" ? undefined : Number(headroom.value),
            groups: job.request.groups?.length ? job.request.groups : undefined,
          },
        }),
      );
      replace(result, placementView(answer, job));
    } catch (error) {
      replace(result, problemView(error));
    } finally {
      submit.disabled = false;
    }
  });

  void loadJobs();
  return section("Load-balance placement", h("p", { class: "muted" }, "Where a job's groups would go on its target's nodes, each at the p95 load of its disks' volumes on the source."), form, result);
}

function placementView(p: Placement, job: Job): HTMLElement {
  const num = (v: number) => h("span", { class: "num" }, rate(v));
  return h(
    "div",
    null,
    h(
      "p",
      null,
      p.fits ? badge("pass") : badge("fail"),
      " ",
      p.fits
        ? `Every group of ${job.name} fits on ${job.request.target} under the limit.`
        : `${p.unplaced.length} group(s) of ${job.name} fit on no node of ${job.request.target} under the limit.`,
    ),
    h(
      "div",
      { class: "scroll" },
      table(
        ["Group", "Node", "p95 (transfers/s)"],
        p.assignments.map((a) => [a.group, a.node, num(a.p95)]),
        "Assignments, largest group first",
      ),
    ),
    h(
      "div",
      { class: "scroll" },
      table(
        ["Node", "Capacity", "Baseline p95", "Placed", "Planned", "Limit", "Headroom left", "Groups"],
        p.nodes.map((n) => [n.node, num(n.capacity), num(n.baseline_p95), num(n.placed), num(n.planned), num(n.limit), `${n.headroom_pct.toFixed(1)} %`, n.groups.join(", ")]),
        "Target nodes after placement",
      ),
    ),
    p.unplaced.length
      ? h(
          "div",
          { class: "scroll" },
          table(["Group", "p95 (transfers/s)"], p.unplaced.map((g) => [g.group, num(g.p95)]), "Groups that fit nowhere"),
        )
      : null,
    h("h3", null, "Reasoning"),
    h("ol", { class: "reasoning" }, ...p.reasoning.map((line) => h("li", null, line))),
  );
}

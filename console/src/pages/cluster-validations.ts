// The validations tab: the cluster's configuration reports, newest first, and one report in full:
// every rule's verdict with its evidence and the PowerShell that remedies it, filterable by
// verdict so the admin works through the failures first.
import { api, ok, problemView, type Schemas } from "../api";
import { badge, field, h, loading, none, replace, table, time } from "../dom";
import { FOLLOW_MS, clusterRoute, pagedList, rememberQuery, scrollTable, sleep, type TabContext } from "./cluster-common";

const REPORTS_PER_PAGE = 20;
/** How often a report still gathering is read again. */
const GATHERING_POLL_MS = 1500;
/** Worst first, as the admin reads a report. */
const VERDICTS: Schemas["Verdict"][] = ["fail", "warn", "unknown", "pass"];

export async function validationsTab(root: HTMLElement, tab: TabContext): Promise<void> {
  const list = h("div", null);
  const report = h("div", { class: "validation-report" });
  replace(root, h("h2", null, "Validations"), list, report);
  let shownFirst = false;
  const wanted = tab.ctx.query.get("validation");
  const showing = wanted ? showReport(report, wanted, tab) : null;

  await Promise.all([
    showing,
    pagedList(
      list,
      (cursor) =>
        ok(api.GET("/v1/clusters/{id}/validations", { params: { path: { id: tab.cluster.id }, query: { limit: REPORTS_PER_PAGE, cursor } } })),
      (validations) => {
        // Without a chosen report, the newest is the one that matters.
        if (!wanted && !shownFirst && validations[0]) {
          shownFirst = true;
          void showReport(report, validations[0].id, tab, validations[0]);
        }
        return reportTable(validations, tab, wanted);
      },
      {
        empty: tab.ctx.can("operator") ? "No validation yet: press Validate now." : "No validation yet.",
        noun: "validations",
        pageSize: REPORTS_PER_PAGE,
        stopped: tab.stopped,
      },
    ).reload(),
  ]);
}

function reportTable(validations: Schemas["Validation"][], tab: TabContext, current: string | null): HTMLElement {
  return scrollTable(
    table(
      ["Report", "State", "Overall", "Findings", "Asked by", "Asked", "Completed"],
      validations.map((v) => [
        h(
          "a",
          { href: `#${clusterRoute(tab.cluster, "validations", { validation: v.id })}`, "aria-current": v.id === current ? "true" : null },
          `Validation #${v.version}`,
        ),
        badge(v.state),
        v.overall ? badge(v.overall) : h("span", { class: "muted" }, "—"),
        verdictCounts(v.findings),
        v.created_by,
        time(v.created_at),
        time(v.completed_at),
      ]),
    ),
    "validations",
  );
}

function verdictCounts(findings: Schemas["Finding"][]): string {
  if (!findings.length) return "—";
  return VERDICTS.map((verdict) => [verdict, findings.filter((f) => f.verdict === verdict).length] as const)
    .filter(([, n]) => n > 0)
    .map(([verdict, n]) => `${n} ${verdict}`)
    .join(", ");
}

async function showReport(root: HTMLElement, id: string, tab: TabContext, known?: Schemas["Validation"]): Promise<void> {
  replace(root, loading());
  try {
    let v = known ?? (await ok(api.GET("/v1/validations/{id}", { params: { path: { id } } })));
    // A report still gathering completes by itself; follow it so the page shows the verdicts,
    // but not forever: an agent that never answers leaves it gathering.
    const deadline = Date.now() + FOLLOW_MS;
    while (v.state === "gathering" && Date.now() < deadline) {
      if (tab.stopped()) return;
      replace(root, reportView(v, tab));
      await sleep(GATHERING_POLL_MS);
      if (tab.stopped()) return;
      v = await ok(api.GET("/v1/validations/{id}", { params: { path: { id } } }));
    }
    if (tab.stopped()) return;
    replace(root, reportView(v, tab, v.state === "gathering"));
  } catch (error) {
    if (!tab.stopped()) replace(root, problemView(error));
  }
}

function reportView(v: Schemas["Validation"], tab: TabContext, gaveUp = false): HTMLElement {
  const head = h(
    "div",
    { class: "report-head" },
    h("h3", { id: "report-title" }, `Validation #${v.version}`, " ", v.overall ? badge(v.overall) : badge(v.state)),
    h(
      "p",
      { class: "muted" },
      `Asked by ${v.created_by} `,
      time(v.created_at),
      v.completed_at ? h("span", null, " · completed ", time(v.completed_at)) : null,
      ` · CSV free space warns under ${v.thresholds.csv_free_warn_percent ?? 20} %, fails under ${v.thresholds.csv_free_fail_percent ?? 10} %`,
    ),
  );
  if (v.state === "gathering") {
    return h(
      "section",
      { "aria-labelledby": "report-title" },
      head,
      gaveUp
        ? h("p", { class: "notice" }, `Still gathering after ${FOLLOW_MS / 60_000} min: the page stopped following this report. Reload the page to read it again.`)
        : h("p", { class: "muted" }, "An agent of the cluster is gathering its configuration facts…"),
    );
  }
  if (v.state === "failed") {
    return h(
      "section",
      { "aria-labelledby": "report-title" },
      head,
      h("div", { class: "problem", role: "alert" }, h("strong", null, "The facts could not be gathered"), h("p", null, v.error ?? "no reason was given")),
    );
  }
  if (!v.findings.length) return h("section", { "aria-labelledby": "report-title" }, head, none("No rule applied."));

  const initial = tab.ctx.query.get("verdict") ?? "";
  const present = VERDICTS.filter((verdict) => v.findings.some((f) => f.verdict === verdict));
  const verdict = h(
    "select",
    { name: "verdict" },
    h("option", { value: "" }, `every verdict (${v.findings.length})`),
    ...VERDICTS.map((x) =>
      h("option", { value: x, selected: x === initial, disabled: !present.includes(x) }, `${x} (${v.findings.filter((f) => f.verdict === x).length})`),
    ),
  );
  const findings = h("div", { class: "findings" });
  const draw = () => {
    const chosen = v.findings.filter((f) => !verdict.value || f.verdict === verdict.value);
    replace(findings, chosen.length ? h("ol", { class: "finding-list" }, ...chosen.map(findingView)) : none("No finding with this verdict."));
  };
  verdict.addEventListener("change", () => {
    rememberQuery(tab.cluster, "validations", { validation: v.id, verdict: verdict.value });
    draw();
  });
  draw();
  return h(
    "section",
    { "aria-labelledby": "report-title" },
    head,
    h("p", null, verdictCounts(v.findings)),
    h("div", { class: "row" }, field("Show findings", verdict)),
    findings,
    v.facts ? factsView(v.facts) : null,
  );
}

function findingView(f: Schemas["Finding"]): HTMLElement {
  return h(
    "li",
    { class: `finding verdict-${f.verdict}`, "data-verdict": f.verdict },
    h("div", { class: "finding-head" }, badge(f.verdict), " ", h("strong", null, f.title), " ", h("code", { class: "muted" }, f.rule)),
    f.evidence.length ? h("ul", { class: "evidence" }, ...f.evidence.map((e) => h("li", null, e))) : null,
    f.remedy ? h("div", { class: "remedy" }, h("span", { class: "remedy-label" }, "Remedy"), h("pre", null, h("code", null, f.remedy))) : null,
  );
}

/** What the rules judged, folded away: the admin opens it to check a surprising verdict. */
function factsView(facts: Schemas["ConfigFacts"]): HTMLElement {
  const nodes = facts.nodes ?? [];
  const networks = facts.networks ?? [];
  const yesNo = (b: boolean | null | undefined) => (b === null || b === undefined ? "unknown" : b ? "yes" : "no");
  return h(
    "details",
    { class: "facts" },
    h("summary", null, "Facts judged"),
    nodes.length
      ? scrollTable(
          table(
            ["Node", "Processor", "NTLM", "Processor compatibility", "HBAs", "Virtual switches"],
            nodes.map((n) => [
              n.name,
              [n.processor.vendor, n.processor.model].filter(Boolean).join(" "),
              yesNo(n.ntlm_enabled),
              yesNo(n.processor_compatibility),
              n.hbas.map((b) => `${b.model} driver ${b.driver_version} firmware ${b.firmware_version}`).join("; ") || "none",
              n.virtual_switches.join(", ") || "none",
            ]),
            "Nodes",
          ),
        )
      : null,
    networks.length
      ? scrollTable(
          table(
            ["Network", "Role", "Metric", "Subnet", "IPsec"],
            networks.map((n) => [n.name, n.role, `${n.metric}${n.auto_metric ? " (auto)" : ""}`, n.subnet, yesNo(n.ipsec_enabled)]),
            "Networks",
          ),
        )
      : null,
    facts.quorum ? h("p", null, `Quorum: ${facts.quorum.quorum_type.replace(/_/g, " ")}, ${facts.quorum.node_count} nodes`) : null,
    (facts.csv_volumes ?? []).length
      ? h("p", null, `CSV volumes: ${(facts.csv_volumes ?? []).map((c) => `${c.name} (${c.path})`).join(", ")}`)
      : null,
  );
}

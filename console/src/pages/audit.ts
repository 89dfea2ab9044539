// Who did what: the audit log, filterable by actor, action, target and outcome, paged by the
// server.
import { api, ok, problemView } from "../api";
import type { Page } from "../app";
import { badge, field, h, loading, none, replace, table, time } from "../dom";

const PAGE = 100;

export const auditPage: Page = (root, ctx) => {
  const actor = h("input", { type: "text", name: "actor", value: ctx.query.get("actor") ?? "" });
  const action = h("input", { type: "text", name: "action", value: ctx.query.get("action") ?? "", placeholder: "job.approve" });
  const target = h("input", { type: "text", name: "target", value: ctx.query.get("target") ?? "", placeholder: "cluster:FS-OLD" });
  const outcome = h(
    "select",
    { name: "outcome" },
    h("option", { value: "" }, "any"),
    ...["success", "denied", "failure"].map((o) => h("option", { value: o, selected: ctx.query.get("outcome") === o }, o)),
  );
  const results = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "row", role: "search" },
    field("Actor", actor),
    field("Action", action),
    field("Target", target),
    field("Outcome", outcome),
    h("button", { type: "submit" }, "Filter"),
  );
  const cursors: (string | undefined)[] = [undefined];
  // The pager stays in place across pages, so the key pressed on Next keeps its focus.
  let page = 0;
  const previous = h("button", { type: "button", disabled: true, onclick: () => void load(page - 1) }, "Previous");
  const next = h("button", { type: "button", disabled: true, onclick: () => void load(page + 1) }, "Next");
  const where = h("span");
  const pager = h("div", { class: "pager" }, previous, where, next);
  // Only the newest request's answer is drawn: a slow page must not replace a later one.
  let ticket = 0;

  async function load(wanted: number): Promise<void> {
    const mine = ++ticket;
    previous.disabled = next.disabled = true;
    replace(results, loading());
    try {
      const records = await ok(
        api.GET("/v1/audit", {
          params: {
            query: {
              limit: PAGE,
              cursor: cursors[wanted],
              actor: actor.value.trim() || undefined,
              action: action.value.trim() || undefined,
              target: target.value.trim() || undefined,
              outcome: (outcome.value || undefined) as "success" | "denied" | "failure" | undefined,
            },
          },
        }),
      );
      if (mine !== ticket) return;
      page = wanted;
      if (records.next) cursors[page + 1] = records.next;
      previous.disabled = page === 0;
      next.disabled = !records.next;
      replace(where, `Page ${page + 1}`);
      replace(
        results,
        records.items.length
          ? h(
              "div",
              { class: "scroll" },
              table(
                ["When", "Actor", "Action", "Target", "Outcome", "Detail", "Source"],
                records.items.map((r) => [time(r.at), r.actor, h("code", null, r.action), r.target, badge(r.outcome), r.detail ?? "", r.source ?? ""]),
              ),
            )
          : none("No record matches."),
      );
    } catch (error) {
      if (mine === ticket) replace(results, problemView(error));
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    cursors.length = 1;
    void load(0);
  });
  replace(root, h("h1", null, "Audit"), form, results, pager);
  void load(0);
};

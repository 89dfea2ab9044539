// The snapshots tab: every inventory snapshot of the cluster, and the diff between any two,
// down to single permission entries: what the admin checks before and after a migration.
import { api, ok, problemView, type Schemas } from "../api";
import { field, h, loading, none, replace, stateClass, table, time } from "../dom";
import { display, focusRow, pagedList, rememberQuery, scrollTable, type TabContext } from "./cluster-common";
import { permissionList } from "./cluster-shares";

/** Changes drawn at once; a diff of a whole 100,000-share cluster is shown a slice at a time. */
const CHANGES_PER_SLICE = 200;

const OPS: Schemas["ChangeOp"][] = ["added", "removed", "changed", "renamed"];
const KINDS: Schemas["ItemKind"][] = ["node", "network", "disk", "group", "resource", "dependency", "share", "permission"];
const KIND_LABELS: Record<Schemas["ItemKind"], string> = {
  node: "nodes",
  network: "networks",
  disk: "disks",
  group: "groups",
  resource: "resources",
  dependency: "dependencies",
  share: "shares",
  permission: "permission entries",
};

export function changeCounts(s: Schemas["DiffSummary"]): string {
  return `+${s.added} −${s.removed} ~${s.changed}${s.renamed ? ` renamed ${s.renamed}` : ""}`;
}

export async function snapshotsTab(root: HTMLElement, tab: TabContext): Promise<void> {
  const latest = tab.cluster.latest_snapshot ?? 0;
  if (!latest) {
    replace(root, h("h2", null, "Snapshots"), none("No snapshot yet: discover the cluster or import an inventory."));
    return;
  }
  const query = tab.ctx.query;
  const fromDefault = Number(query.get("from")) || Math.max(1, latest - 1);
  const toDefault = Number(query.get("to")) || latest;
  // Number inputs rather than selects: any two snapshots can be compared without loading a list
  // of every snapshot the cluster ever had.
  const from = h("input", { type: "number", name: "from", min: 1, step: 1, required: true, value: fromDefault });
  const to = h("input", { type: "number", name: "to", min: 1, step: 1, required: true, value: toDefault });
  const form = h(
    "form",
    { class: "row diff-form", "aria-label": "Compare snapshots" },
    field("From snapshot", from),
    field("To snapshot", to),
    h("button", { type: "submit", class: "primary" }, "Compare"),
  );
  const diffView = h("div", { class: "diff-view", "aria-live": "polite" });
  const list = h("div", null);

  let ticket = 0;
  const compare = async () => {
    const a = Number(from.value);
    const b = Number(to.value);
    const mine = ++ticket;
    rememberQuery(tab.cluster, "snapshots", { from: a, to: b });
    replace(diffView, loading());
    try {
      const diff = await ok(
        api.GET("/v1/clusters/{id}/snapshots/{a}/diff/{b}", { params: { path: { id: tab.cluster.id, a, b } } }),
      );
      if (mine === ticket && !tab.stopped()) replace(diffView, diffReport(diff));
    } catch (error) {
      if (mine === ticket) replace(diffView, problemView(error));
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void compare();
  });
  const pick = (a: number, b: number) => {
    from.value = String(a);
    to.value = String(b);
    void compare();
    form.scrollIntoView({ block: "start" });
  };

  replace(root, h("h2", null, "Snapshots"), list, h("h2", null, "Compare two snapshots"), form, diffView);
  const listed = pagedList(
    list,
    (cursor) => ok(api.GET("/v1/clusters/{id}/snapshots", { params: { path: { id: tab.cluster.id }, query: { limit: 100, cursor } } })),
    (snapshots) => snapshotTable(snapshots, latest, pick),
    { empty: "No snapshot.", noun: "snapshots", stopped: tab.stopped },
  );
  await Promise.all([listed.reload(), latest > 1 || query.has("from") ? compare() : null]);
}

function snapshotTable(snapshots: Schemas["SnapshotInfo"][], latest: number, pick: (a: number, b: number) => void): HTMLElement {
  return scrollTable(
    table(
      ["Snapshot", "Taken", "By", "Groups", "Shares", "Permission entries", "Resources", "Nodes · networks · disks", "Compare"],
      snapshots.map((s) => [
        h("span", null, `#${s.number}`, s.number === latest ? " " : null, s.number === latest ? h("span", { class: "badge state-succeeded" }, "latest") : null),
        time(s.created_at),
        s.created_by,
        String(s.counts.groups),
        String(s.counts.shares),
        String(s.counts.permissions),
        String(s.counts.resources),
        `${s.counts.nodes} · ${s.counts.networks} · ${s.counts.disks}`,
        h(
          "span",
          { class: "row compact" },
          s.number > 1
            ? h("button", { type: "button", class: "link", onclick: () => pick(s.number - 1, s.number) }, `with #${s.number - 1}`)
            : null,
          s.number !== latest
            ? h("button", { type: "button", class: "link", onclick: () => pick(s.number, latest) }, "with latest")
            : null,
        ),
      ]),
    ),
    "snapshots",
  );
}

function diffReport(diff: Schemas["SnapshotDiff"]): HTMLElement {
  const heading = h("h3", null, `From #${diff.from} to #${diff.to}`);
  if (!diff.changes.length) return h("div", null, heading, none("Identical: nothing was added, removed or changed."));

  const byKind = new Map<string, number>();
  for (const c of diff.changes) byKind.set(`${c.kind}/${c.op}`, (byKind.get(`${c.kind}/${c.op}`) ?? 0) + 1);
  const present = KINDS.filter((k) => OPS.some((op) => byKind.has(`${k}/${op}`)));
  // Each row is named by its kind, so its figures read as "shares: 1 added".
  const countRow = (name: string, figures: number[]) =>
    h("tr", null, h("th", { scope: "row" }, name), ...figures.map((n) => h("td", null, String(n))));
  const counts = h(
    "div",
    { class: "scroll diff-counts" },
    h(
      "table",
      null,
      h("caption", null, "Changes by kind: a whole added or removed group or share counts once"),
      h("thead", null, h("tr", null, ...["Kind", ...OPS, "total"].map((t) => h("th", { scope: "col" }, t)))),
      h(
        "tbody",
        null,
        ...present.map((k) => {
          const figures = OPS.map((op) => byKind.get(`${k}/${op}`) ?? 0);
          return countRow(KIND_LABELS[k], [...figures, figures.reduce((a, b) => a + b, 0)]);
        }),
        countRow("all", [...OPS.map((op) => diff.summary[op]), diff.changes.length]),
      ),
    ),
  );

  const op = h("select", { name: "op" }, h("option", { value: "" }, "any change"), ...OPS.map((o) => h("option", { value: o }, o)));
  const kind = h("select", { name: "kind" }, h("option", { value: "" }, "anything"), ...present.map((k) => h("option", { value: k }, KIND_LABELS[k])));
  const rows = h("tbody", null);
  // One button, kept in place and relabelled while slices remain, so the keyboard stays on it.
  const moreButton = h("button", { type: "button" });
  const more = h("div", { class: "diff-more" }, moreButton);
  const shown = h("p", { class: "muted", "aria-live": "polite" });

  let matching: Schemas["Change"][] = [];
  let drawn = 0;
  const drawSlice = () => {
    const slice = matching.slice(drawn, drawn + CHANGES_PER_SLICE).map(changeRow);
    rows.append(...slice);
    drawn += slice.length;
    shown.textContent = `${drawn} of ${matching.length} changes shown`;
    const focused = document.activeElement === moreButton;
    moreButton.hidden = drawn >= matching.length;
    moreButton.textContent = `Show ${Math.min(CHANGES_PER_SLICE, matching.length - drawn)} more`;
    // The last slice takes the button away: the keyboard moves to the first row it brought.
    if (focused && moreButton.hidden) focusRow(slice[0]);
  };
  moreButton.addEventListener("click", drawSlice);
  const filter = () => {
    matching = diff.changes.filter((c) => (!op.value || c.op === op.value) && (!kind.value || c.kind === kind.value));
    drawn = 0;
    rows.replaceChildren();
    drawSlice();
  };
  op.addEventListener("change", filter);
  kind.addEventListener("change", filter);
  filter();

  return h(
    "div",
    null,
    heading,
    h(
      "ul",
      { class: "inline-list diff-summary" },
      h("li", { class: "diff-added" }, `${diff.summary.added} added`),
      h("li", { class: "diff-removed" }, `${diff.summary.removed} removed`),
      h("li", { class: "diff-changed" }, `${diff.summary.changed} changed`),
      h("li", null, `${diff.summary.renamed} renamed`),
    ),
    counts,
    h("div", { class: "row" }, field("Show", op), field("Of", kind)),
    shown,
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        { class: "diff" },
        h("thead", null, h("tr", null, ...["Change", "What", "Where", "Item", "Details"].map((t) => h("th", { scope: "col" }, t)))),
        rows,
      ),
    ),
    more,
  );
}

function changeRow(c: Schemas["Change"]): HTMLTableRowElement {
  const where = [c.group ? `group ${c.group}` : null, c.share ? `share ${c.share}` : null, c.resource ? `resource ${c.resource}` : null]
    .filter(Boolean)
    .join(" › ");
  return h(
    "tr",
    { class: `change op-${stateClass(c.op)}`, "data-kind": c.kind, "data-op": c.op },
    h("td", null, h("span", { class: `badge op-${stateClass(c.op)}` }, c.op)),
    h("td", null, c.kind),
    h("td", null, where || h("span", { class: "muted" }, "cluster")),
    h("td", null, h("span", { class: "change-name" }, c.name), c.renamed_from ? h("div", { class: "muted" }, `was ${c.renamed_from}`) : null),
    h("td", null, changeDetails(c)),
  );
}

function changeDetails(c: Schemas["Change"]): Node {
  if (c.op === "changed" || c.op === "renamed") {
    if (!c.fields.length) return document.createTextNode("");
    return h(
      "ul",
      { class: "fields" },
      ...c.fields.map((f) =>
        h("li", null, h("code", null, f.field), ": ", h("del", null, display(f.from)), " → ", h("ins", null, display(f.to))),
      ),
    );
  }
  return itemView(c.kind, c.op === "added" ? c.after : c.before);
}

/** An added or removed item, as what matters about it rather than its raw JSON. */
function itemView(kind: Schemas["ItemKind"], item: unknown): Node {
  if (item === null || item === undefined) return document.createTextNode("");
  if (typeof item !== "object") return document.createTextNode(display(item));
  const o = item as Record<string, unknown>;
  if (kind === "permission") return permissionList([o as unknown as Schemas["Permission"]]);
  const lines: Node[] = [];
  for (const [key, value] of Object.entries(o)) {
    if (key === "name") continue;
    if (key === "permissions" && Array.isArray(value)) {
      lines.push(h("li", null, h("span", { class: "muted" }, "permissions: "), permissionList(value as Schemas["Permission"][])));
    } else if (Array.isArray(value)) {
      if (!value.length) continue;
      const names = value.map((v) => (v && typeof v === "object" && "name" in v ? display((v as { name: unknown }).name) : display(v)));
      lines.push(h("li", null, h("span", { class: "muted" }, `${key} (${value.length}): `), names.join(", ")));
    } else if (value !== null && typeof value === "object") {
      const entries = Object.entries(value as Record<string, unknown>);
      if (entries.length) lines.push(h("li", null, h("span", { class: "muted" }, `${key}: `), entries.map(([k, v]) => `${k}=${display(v)}`).join(", ")));
    } else if (value !== null && value !== "") {
      lines.push(h("li", null, h("span", { class: "muted" }, `${key}: `), display(value)));
    }
  }
  return h("ul", { class: "props" }, ...lines);
}

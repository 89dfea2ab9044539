// The shares tab: one group's shares with their settings and every permission entry, searched
// and filtered by the server one page at a time, so a group of 100,000 shares is never loaded
// whole.
import { api, ok, problemView, type Schemas } from "../api";
import { field, h, none, replace, stateClass, table } from "../dom";
import { PAGE_SIZE, pagedList, rememberQuery, scrollTable, type TabContext } from "./cluster-common";

/** Enough for every group of a real cluster; the select says so when a cluster has more. */
const GROUP_CHOICES = 1000;

const CACHING: Record<Schemas["CachingMode"], string> = {
  manual: "offline files: manual",
  documents: "offline files: documents",
  programs: "offline files: programs",
  none: "no offline files",
  branch_cache: "BranchCache",
};

export async function sharesTab(root: HTMLElement, tab: TabContext): Promise<void> {
  const groups = await ok(
    api.GET("/v1/clusters/{id}/groups", { params: { path: { id: tab.cluster.id }, query: { limit: GROUP_CHOICES } } }),
  );
  if (!groups.items.length) {
    replace(root, h("h2", null, "Shares"), none("No group in the latest snapshot, so no share: discover the cluster first."));
    return;
  }
  const query = tab.ctx.query;
  const wanted = query.get("group");
  const chosen = groups.items.find((g) => g.id === wanted || g.name === wanted) ?? groups.items[0];
  const group = h(
    "select",
    { name: "group" },
    ...groups.items.map((g) => h("option", { value: g.id, selected: g === chosen }, `${g.name} (${g.share_count} shares)`)),
  );
  const prefix = h("input", { type: "search", name: "name_prefix", value: query.get("name_prefix") ?? "", maxlength: 255, autocomplete: "off" });
  const principal = h("input", {
    type: "search",
    name: "principal",
    value: query.get("principal") ?? "",
    maxlength: 255,
    autocomplete: "off",
    placeholder: "CORP\\Finance",
  });
  const form = h(
    "form",
    { class: "row share-search", role: "search", "aria-label": "Shares" },
    field("Group", group, groups.next ? `The first ${GROUP_CHOICES} groups` : undefined),
    field("Name starts with", prefix),
    field("Has an entry for principal", principal),
    h("button", { type: "submit" }, "Search"),
  );
  const results = h("div", { class: "share-results", "aria-live": "polite" });
  replace(root, h("h2", null, "Shares"), form, results);

  const list = pagedList(
    results,
    (cursor) =>
      ok(
        api.GET("/v1/groups/{id}/shares", {
          params: {
            path: { id: group.value },
            query: {
              limit: PAGE_SIZE,
              cursor,
              name_prefix: prefix.value.trim() || undefined,
              principal: principal.value.trim() || undefined,
            },
          },
        }),
      ),
    shareTable,
    { empty: "No share matches.", noun: "shares", stopped: tab.stopped },
  );
  const search = () => {
    rememberQuery(tab.cluster, "shares", { group: group.value, name_prefix: prefix.value.trim(), principal: principal.value.trim() });
    return list.reload();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void search();
  });
  group.addEventListener("change", () => void search());
  await list.reload();
}

function shareTable(shares: Schemas["Share"][]): HTMLElement {
  return scrollTable(
    table(
      ["Share", "Path", "Description", "Settings", "Permissions"],
      shares.map((s) => [
        h("span", { class: "share-name" }, s.name),
        h("code", { class: "share-path" }, s.path),
        s.description ? h("span", { class: "share-description" }, s.description) : h("span", { class: "muted" }, "—"),
        settings(s),
        permissionList(s.permissions ?? []),
      ]),
    ),
    "shares",
  );
}

function settings(s: Schemas["Share"]): HTMLElement {
  const flags: string[] = [];
  if (s.name.endsWith("$")) flags.push("hidden");
  if (s.caching) flags.push(CACHING[s.caching] ?? s.caching);
  if (s.access_based_enumeration) flags.push("access-based enumeration");
  if (s.continuous_availability) flags.push("continuously available");
  if (s.encrypt_data) flags.push("encrypted");
  flags.push(s.user_limit ? `at most ${s.user_limit} users` : "unlimited users");
  return h("ul", { class: "flags" }, ...flags.map((f) => h("li", null, f)));
}

export function permissionList(permissions: Schemas["Permission"][]): HTMLElement {
  if (!permissions.length) return h("span", { class: "muted" }, "no entry");
  return h("ul", { class: "perms" }, ...permissions.map(permissionItem));
}

function permissionItem(p: Schemas["Permission"]): HTMLElement {
  return h(
    "li",
    { class: "perm" },
    h("span", { class: `badge ace-${stateClass(p.type)}` }, p.type),
    " ",
    h("span", { class: "principal" }, p.principal),
    " ",
    h("span", { class: "access" }, p.access),
  );
}

// The job request form's repeatable rows: cutover windows and the disk mapping. Each row is
// real labelled inputs; the form reads them back into a JobRequest.
import type { Schemas } from "../api";
import { field, h } from "../dom";

type Window = Schemas["CutoverWindow"];

const ZONES: string[] = (() => {
  try {
    return Intl.supportedValuesOf("timeZone");
  } catch {
    return ["UTC"];
  }
})();

const LOCAL_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

let zoneList: HTMLDataListElement | null = null;

/** One shared `<datalist>` of IANA zones for every time zone input. */
export function zoneDatalist(): HTMLDataListElement {
  if (!zoneList) {
    zoneList = h("datalist", { id: "plan-zones" }, ...["UTC", ...ZONES].map((z) => h("option", { value: z })));
  }
  return zoneList;
}

function zoneInput(value = LOCAL_ZONE): HTMLInputElement {
  return h("input", { type: "text", list: "plan-zones", value, required: true, autocomplete: "off", spellcheck: "false", class: "zone" });
}

export interface WindowRow {
  element: HTMLElement;
  read(): Window;
}

/** A recurring window: cron on the wall clock of a time zone, for a number of minutes. */
export function recurringRow(onRemove: (row: HTMLElement) => void): WindowRow {
  const cron = h("input", { type: "text", value: "0 22 * * 6", required: true, spellcheck: "false", class: "cron" });
  const minutes = h("input", { type: "number", min: 1, max: 10080, value: 240, required: true, class: "short" });
  const zone = zoneInput();
  const element = h(
    "div",
    { class: "plan-row" },
    field("Starts (cron: minute hour day month weekday)", cron),
    field("Lasts (minutes)", minutes),
    field("Time zone", zone),
  );
  element.append(h("button", { type: "button", class: "remove", onclick: () => onRemove(element) }, "Remove window"));
  return {
    element,
    read: () => ({
      kind: "recurring",
      cron: cron.value.trim(),
      duration: Math.round(Number(minutes.value) * 60),
      time_zone: zone.value.trim() as Schemas["TimeZone"],
    }),
  };
}

/** A one-off window between two wall-clock times of a time zone. */
export function intervalRow(onRemove: (row: HTMLElement) => void): WindowRow {
  const start = h("input", { type: "datetime-local", required: true });
  const end = h("input", { type: "datetime-local", required: true });
  const zone = zoneInput();
  const element = h(
    "div",
    { class: "plan-row" },
    field("From", start),
    field("Until", end),
    field("Time zone", zone),
  );
  element.append(h("button", { type: "button", class: "remove", onclick: () => onRemove(element) }, "Remove window"));
  return {
    element,
    read: () => ({
      kind: "interval",
      start: wallClockToIso(start.value, zone.value.trim()),
      end: wallClockToIso(end.value, zone.value.trim()),
    }),
  };
}

export interface DiskRow {
  element: HTMLElement;
  source: HTMLInputElement;
  target: HTMLInputElement;
}

export function diskRow(onRemove: (row: HTMLElement) => void, source = "", target = ""): DiskRow {
  const sourceInput = h("input", { type: "text", value: source, spellcheck: "false", placeholder: "Cluster Disk 1" });
  const targetInput = h("input", { type: "text", value: target, spellcheck: "false", placeholder: "Cluster Disk 4" });
  const element = h(
    "div",
    { class: "plan-row disk-row" },
    field("Source disk", sourceInput),
    h("span", { class: "arrow", "aria-hidden": "true" }, "→"),
    field("Target disk", targetInput),
  );
  element.append(h("button", { type: "button", class: "remove", onclick: () => onRemove(element) }, "Remove disk"));
  return { element, source: sourceInput, target: targetInput };
}

/**
 * `2026-03-29T02:30` on the wall clock of `zone` as an RFC 3339 instant. The zone's offset is
 * found by formatting a guess in that zone and correcting by the difference (twice, so a guess
 * on the other side of a daylight-saving change settles). Unparseable input is passed on as is,
 * and the server names the field.
 */
export function wallClockToIso(local: string, zone: string): string {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(local);
  if (!match) return local;
  const [, y, mo, d, hh, mm, ss] = match;
  const wall = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(hh), Number(mm), Number(ss ?? 0));
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
  } catch {
    return local;
  }
  const asWall = (instant: number): number => {
    const parts: Record<string, number> = {};
    for (const p of format.formatToParts(new Date(instant))) if (p.type !== "literal") parts[p.type] = Number(p.value);
    return Date.UTC(parts.year ?? 0, (parts.month ?? 1) - 1, parts.day ?? 1, parts.hour ?? 0, parts.minute ?? 0, parts.second ?? 0);
  };
  let instant = wall;
  for (let i = 0; i < 2; i++) instant = wall - (asWall(instant) - instant);
  return new Date(instant).toISOString();
}

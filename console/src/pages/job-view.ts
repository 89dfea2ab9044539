// Pieces the plan and job pages share: how a finding, a step, a verification and a downtime
// read to a person.
import type { Schemas } from "../api";
import { badge, h, seconds, stateClass } from "../dom";

export type JobDetail = Schemas["JobDetail"];
export type JobGroup = Schemas["JobGroup"];
export type JobStep = Schemas["JobStep"];

export type PreflightFinding = Schemas["PreflightFinding"];

/** What a plan's preflight or a running job found, one line each, worst marked by its badge. */
export function findingList(findings: readonly PreflightFinding[]): HTMLElement {
  return h(
    "ul",
    { class: "job-findings" },
    ...findings.map((f) =>
      h(
        "li",
        { class: `job-finding job-finding-${stateClass(f.severity)}` },
        badge(f.severity),
        " ",
        h("span", null, f.message),
        h("span", { class: "muted" }, ` (${f.check}${f.group ? `, group ${f.group}` : ""})`),
      ),
    ),
  );
}

/** The worst severity of some findings. */
export function worstFinding(findings: readonly PreflightFinding[]): PreflightFinding["severity"] | null {
  const order: PreflightFinding["severity"][] = ["pass", "warn", "fail"];
  let worst = -1;
  for (const f of findings) worst = Math.max(worst, order.indexOf(f.severity));
  return worst < 0 ? null : (order[worst] ?? null);
}

export function stepName(step: JobStep): string {
  const action = step.action;
  if (action.type === "run") return action.kind;
  if (action.type === "undo") return `undo ${action.kind}`;
  return "verify source";
}

export function isFinishedStep(step: JobStep): boolean {
  return step.state === "succeeded" || step.state === "skipped";
}

/** The step a person watches: the one running or retrying, else the next to run, else the last. */
export function currentStep(group: JobGroup): JobStep | null {
  const steps = group.rollback && group.rollback.length && group.state.startsWith("roll") ? group.rollback : group.steps;
  return (
    steps.find((s) => s.state === "running" || s.state === "retrying") ??
    steps.find((s) => s.state === "failed") ??
    steps.find((s) => s.state === "pending") ??
    steps[steps.length - 1] ??
    null
  );
}

/** `verified 20/20` when the report passed; the shortfall otherwise. */
export function verificationText(group: JobGroup): string {
  const v = group.verification;
  if (!v) return "not verified yet";
  if (v.passed) return `verified ${v.identical}/${v.expected} on ${v.cluster}`;
  const gaps = [
    v.missing.length ? `${v.missing.length} missing` : "",
    v.changed.length ? `${v.changed.length} changed` : "",
    v.unexpected.length ? `${v.unexpected.length} unexpected` : "",
    v.lost && v.lost.length ? `${v.lost.length} lost` : "",
    v.network_name_online ? "" : "network name offline",
  ].filter(Boolean);
  return `NOT verified: ${v.identical}/${v.expected} identical on ${v.cluster}${gaps.length ? ` (${gaps.join(", ")})` : ""}`;
}

export function downtimeSeconds(group: JobGroup): number | null {
  if (!group.downtime_started_at) return null;
  const start = Date.parse(group.downtime_started_at);
  const end = group.downtime_ended_at ? Date.parse(group.downtime_ended_at) : Date.now();
  return Math.max(0, (end - start) / 1000);
}

const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

export function downtimeText(group: JobGroup): string {
  if (!group.downtime_started_at) return "none yet";
  if (!group.downtime_ended_at) return `DOWN since ${clock.format(new Date(group.downtime_started_at))}`;
  return seconds(downtimeSeconds(group));
}

export function clockTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : clock.format(d);
}

/** Seconds between two instants, or null. */
export function took(from: string | null | undefined, to: string | null | undefined): number | null {
  if (!from || !to) return null;
  return Math.max(0, (Date.parse(to) - Date.parse(from)) / 1000);
}

export const FINISHED_JOB = new Set(["succeeded", "failed", "cancelled"]);
export const FINISHED_GROUP = new Set(["succeeded", "failed", "rolled_back", "rollback_failed", "cancelled"]);

// What every browser test starts from: a real `ferry server` on a fresh SQLite database, the
// README's three simulated clusters with their five `ferry agent` processes, discovered, and a
// headless Chromium from Debian's `chromium` package driven by playwright-core.
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { chromium } from "playwright-core";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, "../..");
export const bin = resolve(process.env.FERRY_BIN ?? join(repo, "target/debug/ferry"));
export const screenshots = join(repo, "target/console-screenshots");

const CHROMIUMS = ["/usr/bin/chromium", "/usr/lib/chromium/chromium"];

export function chromiumPath() {
  const path = process.env.FERRY_CHROMIUM ?? CHROMIUMS.find((p) => existsSync(p));
  if (!path) throw new Error("no Chromium: install Debian's `chromium` or set FERRY_CHROMIUM");
  return path;
}

async function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

/**
 * Starts a server and, unless `clusters: false`, the README's clusters: FS-OLD (ws2003, two nodes,
 * `groups` groups of `shares` shares), FS-MID (ws2008, one node) and FS-NEW (ws2008r2, two nodes,
 * with a CSV volume), each with its agents, discovered once.
 */
export async function startFerry({ groups = 3, shares = 20, clusters = true, env = {} } = {}) {
  if (!existsSync(bin)) throw new Error(`no ferry binary at ${bin}: cargo build --bin ferry first`);
  const dir = mkdtempSync(join(tmpdir(), "ferry-console-"));
  const [httpPort, grpcPort] = [await freePort(), await freePort()];
  const token = `console-admin-${Math.random().toString(36).slice(2)}${Date.now()}`;
  const url = `http://127.0.0.1:${httpPort}`;
  const grpc = `http://127.0.0.1:${grpcPort}`;
  const baseEnv = {
    ...process.env,
    FERRY_DATABASE_URL: `sqlite://${join(dir, "ferry.db")}`,
    FERRY_SERVER: url,
    FERRY_TOKEN: token,
    FERRY_LOG_LEVEL: "warn",
    NO_COLOR: "1",
  };
  const children = [];
  const spawnLogged = (args, name, extraEnv = {}) => {
    const child = spawn(bin, args, { cwd: dir, env: { ...baseEnv, ...extraEnv }, stdio: ["ignore", "pipe", "pipe"] });
    const log = [];
    child.stdout.on("data", (d) => log.push(d));
    child.stderr.on("data", (d) => log.push(d));
    child.on("exit", () => writeFileSync(join(dir, `${name}.log`), Buffer.concat(log)));
    children.push(child);
    return child;
  };

  let restarts = 0;
  const startServer = async () => {
    const child = spawnLogged(["server"], restarts ? `server-${restarts}` : "server", {
      FERRY_HTTP_ADDR: `127.0.0.1:${httpPort}`,
      FERRY_GRPC_ADDR: `127.0.0.1:${grpcPort}`,
      FERRY_BOOTSTRAP_TOKEN: token,
      FERRY_PERF_COMPACT_MS: "500",
      ...env,
    });
    await waitFor(async () => (await fetch(`${url}/readyz`)).ok, 20_000, "the server to be ready");
    return child;
  };
  let server = await startServer();

  /** Runs the ferry CLI against this server; resolves with its standard output. */
  const cli = async (args, options = {}) => {
    try {
      const { stdout } = await run(bin, args, { cwd: dir, env: baseEnv, maxBuffer: 64 << 20, timeout: options.timeout ?? 120_000 });
      return stdout;
    } catch (error) {
      throw new Error(`ferry ${args.join(" ")} failed: ${error.stderr || error.message}`);
    }
  };

  const ferry = {
    url,
    grpc,
    token,
    dir,
    cli,
    /**
     * Kills the server (SIGKILL: every open connection, the event streams included, is cut)
     * and starts it again on the same ports and database.
     */
    async restartServer() {
      const exited = new Promise((ok) => server.once("exit", ok));
      server.kill("SIGKILL");
      await exited;
      restarts += 1;
      server = await startServer();
    },
    /** An API token of another role, made directly in the database as an admin would. */
    async makeToken(role, name = `console-${role}`) {
      return (await cli(["token", "create", "--role", role, "--name", name])).trim();
    },
    /** An authenticated call to the REST API. */
    async api(method, path, body, secret = token) {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: { Authorization: `Bearer ${secret}`, ...(body ? { "Content-Type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : null };
    },
    startAgent(cluster, node, extraArgs = []) {
      return (async () => {
        const join = (await cli(["token", "create", "--kind", "join", "--cluster", cluster])).trim();
        spawnLogged(
          ["agent", "--server", grpc, "--cluster", cluster, "--node", node, "--state-dir", `agents/${node}`, "--driver", "sim", "--sim-dir", `sims/${cluster}`, ...extraArgs],
          `agent-${node}`,
          { FERRY_JOIN_TOKEN: join },
        );
      })();
    },
    async stop() {
      for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
      await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((ok) => c.once("exit", ok)) : null)));
      if (process.env.FERRY_KEEP_TEST_DIR) console.log(`kept ${dir}`);
      else rmSync(dir, { recursive: true, force: true });
    },
  };

  if (clusters) {
    try {
      mkdirSync(join(dir, "sims"), { recursive: true });
      await cli(["sim", "create", "--dir", "sims/FS-OLD", "--cluster", "FS-OLD", "--os", "ws2003", "--nodes", "2", "--groups", String(groups), "--shares", String(shares)]);
      await cli(["sim", "create", "--dir", "sims/FS-MID", "--cluster", "FS-MID", "--os", "ws2008", "--nodes", "1", "--groups", "0", "--spare-disks", "3"]);
      await cli(["sim", "create", "--dir", "sims/FS-NEW", "--cluster", "FS-NEW", "--os", "ws2008r2", "--nodes", "2", "--groups", "0"]);
      for (const [name, os] of [["FS-OLD", "ws2003"], ["FS-MID", "ws2008"], ["FS-NEW", "ws2008r2"]]) {
        await cli(["cluster", "create", name, "--os", os]);
      }
      for (const node of ["FS-OLD-n1", "FS-OLD-n2", "FS-MID-n1", "FS-NEW-n1", "FS-NEW-n2"]) {
        await ferry.startAgent(node.replace(/-n\d+$/, ""), node);
      }
      for (const name of ["FS-OLD", "FS-MID", "FS-NEW"]) {
        await cli(["cluster", "discover", name, "--wait"], { timeout: 120_000 });
      }
    } catch (error) {
      await ferry.stop();
      throw error;
    }
  }
  return ferry;
}

/** The disk names FS-NEW gives FS-OLD's disks once presented: the job request's disk mapping. */
export async function presentDisks(ferry, disks = ["Cluster Disk 1", "Cluster Disk 2", "Cluster Disk 3"]) {
  const mapping = {};
  for (const disk of disks) {
    const out = await ferry.cli(["sim", "present-disk", "--dir", "sims/FS-NEW", "--from", "sims/FS-OLD", "--disk", disk]);
    mapping[disk] = out.trim().split("\n").pop();
  }
  return mapping;
}

export async function waitFor(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      last = error;
    }
    await new Promise((ok) => setTimeout(ok, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

/**
 * A headless Chromium page signed in with `secret`. Any console error, failed request to the
 * console's own assets, or CSP violation fails the test through `page.problems`.
 */
export async function openConsole(ferry, secret = ferry.token, { width = 1280, height = 800 } = {}) {
  const browser = await chromium.launch({ executablePath: chromiumPath(), args: ["--no-sandbox"] });
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  const problems = [];
  page.on("console", (message) => {
    // An API call the test expects refused (401, 403, 404) is logged by Chromium as a failed
    // load; a refused asset shows as a `requestfailed` or a broken page instead.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      problems.push(`console: ${message.text()}`);
    }
  });
  page.on("response", (response) => {
    if (response.url().includes("/console/") && response.status() >= 400) {
      problems.push(`asset ${response.url()} answered ${response.status()}`);
    }
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("dialog", (dialog) => {
    problems.push(`a dialog opened: ${dialog.message()}`);
    void dialog.dismiss();
  });
  await page.goto(`${ferry.url}/console/`);
  if (secret) {
    await page.getByLabel("API token").fill(secret);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
  }
  return {
    browser,
    page,
    problems,
    async shot(name) {
      mkdirSync(screenshots, { recursive: true });
      await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
    },
    async close() {
      await browser.close();
    },
  };
}

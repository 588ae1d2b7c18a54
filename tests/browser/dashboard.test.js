#!/usr/bin/env node
// The dashboard in a real browser: Debian's chromium, driven headless by
// playwright-core (tests/integration/test_dashboard.sh starts the registry,
// the agent and the workloads, then runs this).
//
// Environment:
//   DASH_URL      the registry's HTTP side, http://127.0.0.1:PORT
//   DASH_OUT      where the screenshots go (created)
//   DASH_PROFILE  a fresh, empty directory for chromium's profile
//   DASH_HOST     the host that must show online
//   DASH_APP      NAME@VERSION of the app that must show running
//   DASH_MODEL    NAME@VERSION of the model that must show running
//   DASH_DEPLOY   a JSON array: the command that deploys the app's next version
//   DASH_DEPLOY_BACK  the command that deploys the app's first version again
//   DASH_NEXT     that version
//   DASH_LOGS     1 when the registry reads log tails (--http-logs-key)
// Every wait has a deadline; the first failed check exits 1 with one line.
"use strict";
const { chromium } = require("playwright-core");
const { execFileSync } = require("child_process");
const fs = require("fs");
const path = require("path");

const env = (k) => {
  const v = process.env[k];
  if (!v) fail(`${k} is not set`);
  return v;
};
function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}
// A failed wait: what the page showed then goes to failure.png first.
let currentPage = null;
async function dead(msg) {
  if (currentPage)
    await currentPage.screenshot({ path: path.join(process.env.DASH_OUT || ".", "failure.png"), fullPage: true, timeout: 5000 })
      .catch(() => {});
  fail(msg);
}
// In the page: a row of app a on host h shows version v.
function shows([a, h, v]) {
  return [...document.querySelectorAll(`#apps tr[data-workload="${a}"][data-host="${h}"]`)]
    .some((row) => row.querySelector(".version") && row.querySelector(".version").textContent === v);
}
function pass(msg) {
  console.log(`ok - ${msg}`);
}

const url = env("DASH_URL");
const out = env("DASH_OUT");
const profile = env("DASH_PROFILE");
const host = env("DASH_HOST");
const [app, appVersion] = env("DASH_APP").split("@");
const [modelName, modelVersion] = env("DASH_MODEL").split("@");
const deploy = JSON.parse(env("DASH_DEPLOY"));
const deployBack = JSON.parse(env("DASH_DEPLOY_BACK"));
const run = (cmd) => execFileSync(cmd[0], cmd.slice(1), { stdio: ["ignore", "ignore", "inherit"] });
const next = env("DASH_NEXT");
const origin = new URL(url).origin;

(async () => {
  fs.mkdirSync(out, { recursive: true });
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1366, height: 900 },
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    timeout: 30000,
  });
  let exitCode = 0;
  try {
    const page = ctx.pages()[0] || (await ctx.newPage());
    currentPage = page;
    // Every request the page makes, to check none leaves the registry.
    const requests = [];
    page.on("request", (r) => requests.push(r.url()));
    // Failed answers: only the log tail may be refused (404: this registry
    // reads no logs, docs/dashboard.md); the browser's console line for it
    // ("Failed to load resource") is left to this check.
    const failed = [];
    page.on("response", (r) => {
      if (r.status() >= 400 && !(r.status() === 404 && new URL(r.url()).pathname.startsWith("/api/v1/logs/")))
        failed.push(`${r.status()} ${r.url()}`);
    });
    const consoleErrors = [];
    page.on("console", (m) => {
      if (m.type() === "error" && !/^Failed to load resource/.test(m.text())) consoleErrors.push(m.text());
    });
    page.on("pageerror", (e) => consoleErrors.push(String(e)));

    const resp = await page.goto(url + "/", { waitUntil: "load", timeout: 15000 });
    if (!resp || resp.status() !== 200) fail(`GET / answered ${resp && resp.status()}`);

    // The host, online (the word, not only a colour).
    const hostRow = page.locator(`#hosts tr[data-host="${host}"]`);
    await hostRow.locator('.state[data-state="online"]').waitFor({ timeout: 15000 })
      .catch(() => dead(`host ${host} does not show online`));
    if (!/online/.test(await hostRow.innerText())) fail(`host row has no word "online"`);
    pass(`the page shows host ${host} online`);

    // The app with its version and state.
    const appRow = page.locator(`#apps tr[data-workload="${app}"][data-host="${host}"]`);
    await appRow.locator('.state[data-state="running"]').waitFor({ timeout: 15000 })
      .catch(() => dead(`app ${app} does not show running`));
    const appText = await appRow.innerText();
    if (!appText.includes(appVersion)) fail(`app row '${appText}' lacks version ${appVersion}`);
    if (!/running/.test(appText)) fail(`app row has no word "running"`);
    pass(`the page shows app ${app}@${appVersion} running`);

    // The model's card, its state and its charts.
    const card = page.locator(`#models .card[data-workload="${modelName}"][data-host="${host}"]`);
    await card.locator('.state[data-state="running"]').waitFor({ timeout: 15000 })
      .catch(() => dead(`model ${modelName} does not show running`));
    const cardText = await card.innerText();
    if (!cardText.includes(modelVersion)) fail(`model card '${cardText}' lacks version ${modelVersion}`);
    for (const k of ["rps", "latency", "errors", "drift"])
      await card.locator(`.mini[data-chart="${k}"]`).waitFor({ timeout: 15000 })
        .catch(() => dead(`model card has no ${k} chart`));
    // At least one chart drawn by uPlot from the stored series.
    await card.locator(".mini .uplot").first().waitFor({ timeout: 20000 })
      .catch(() => dead("no model chart was drawn (no series from /api/v1/metrics?)"));
    pass(`the page shows model ${modelName}@${modelVersion} running, with its four charts`);

    // Live: the next version shows without a reload, within 5 s of the deploy.
    await page.evaluate(() => { window.__noReload = "still here"; });
    const t0 = Date.now();
    run(deploy);
    await page.waitForFunction(shows, [app, host, next], { timeout: 5000, polling: 100 })
      .catch(() => dead(`version ${next} of ${app} did not show within 5 s of the deploy`));
    const took = Date.now() - t0;
    if ((await page.evaluate(() => window.__noReload)) !== "still here") fail("the page reloaded");
    const mode = await page.locator("#live").getAttribute("data-mode");
    pass(`the page showed ${app}@${next} ${took} ms after the deploy, without a reload (updates: ${mode})`);
    if (mode !== "live") fail(`the page is not on the live stream but '${mode}'`);

    // With traffic flowing (the shell keeps predicting), the request rate
    // gets a value once two 10 s buckets are stored, a line with three;
    // then, with the new version running, the screenshot.
    await page.waitForFunction(
      (m) => {
        const now = document.querySelector(`#models .card[data-workload="${m}"] .mini[data-chart="rps"] .now`);
        return now && now.textContent !== "–" && parseFloat(now.textContent) > 0;
      }, modelName, { timeout: 60000, polling: 250 })
      .catch(() => dead("the requests-per-second chart got no value within 60 s"));
    pass("the model's request rate shows on its card");
    await page.waitForFunction(
      ([m, a, h, v]) => {
        const plot = document.querySelector(`#models .card[data-workload="${m}"] .mini[data-chart="rps"] .plot`);
        const rows = document.querySelectorAll(`#apps tr[data-workload="${a}"][data-host="${h}"]`);
        return plot && Number(plot.getAttribute("data-points")) >= 2 && rows.length === 1 &&
          rows[0].querySelector('.state[data-state="running"]') && rows[0].querySelector(".version").textContent === v;
      }, [modelName, app, host, next], { timeout: 40000, polling: 250 })
      .catch(() => dead(`no request-rate line, or ${app}@${next} alone and running on ${host}, within 40 s`));
    await page.screenshot({ path: path.join(out, "dashboard.png"), fullPage: true });

    // The stream drops (the browser refuses it): the page polls, and still
    // shows a change within 5 s; once the stream is back it returns to it.
    await page.route("**/api/v1/stream*", (r) => r.abort());
    run(deployBack); // answers the wait in flight; the next one fails
    await page.waitForFunction(() => document.querySelector("#live").getAttribute("data-mode") === "polling",
      null, { timeout: 15000, polling: 100 })
      .catch(() => dead("the page did not fall back to polling when the stream failed"));
    await page.waitForFunction(shows, [app, host, appVersion], { timeout: 10000, polling: 100 })
      .catch(() => dead(`version ${appVersion} of ${app} did not show while polling`));
    const t1 = Date.now();
    run(deploy);
    await page.waitForFunction(shows, [app, host, next], { timeout: 5000, polling: 100 })
      .catch(() => dead(`while polling, version ${next} of ${app} did not show within 5 s of the deploy`));
    if ((await page.evaluate(() => window.__noReload)) !== "still here") dead("the page reloaded");
    pass(`with the stream refused the page polls and showed ${app}@${next} ${Date.now() - t1} ms after the deploy`);
    await page.unroute("**/api/v1/stream*");
    await page.waitForFunction(() => document.querySelector("#live").getAttribute("data-mode") === "live",
      null, { timeout: 30000, polling: 250 })
      .catch(() => dead("the page did not go back to the stream"));
    pass("the page goes back to the stream once it answers again");

    // The model's detail view: versions, deployments, events, the log tail note, large charts.
    await card.locator(`a[data-workload="${modelName}"]`).first().click();
    await page.locator("#detail:not([hidden])").waitFor({ timeout: 5000 })
      .catch(() => dead("the detail view did not open"));
    await page.locator("#detail-versions tbody tr td.version").first().waitFor({ timeout: 10000 })
      .catch(() => dead("the detail view lists no version"));
    const versions = await page.locator("#detail-versions tbody").innerText();
    if (!versions.includes(modelVersion)) fail(`detail versions '${versions}' lack ${modelVersion}`);
    await page.locator("#detail-logs .note, #detail-logs pre").first().waitFor({ timeout: 20000 })
      .catch(() => dead("the detail view shows neither a log tail nor how to get one"));
    const logs = await page.locator("#detail-logs").innerText();
    if (process.env.DASH_LOGS === "1") {
      // The registry has a logs key: the tail itself, stdout and stderr.
      await page.locator('#detail-logs pre[data-stream="stderr"]').waitFor({ timeout: 20000 })
        .catch(() => dead(`the log section shows no log tail: '${logs}'`));
    } else if (!logs.includes(`ferry logs ${modelName}`)) {
      fail(`the log section says '${logs}'`);
    }
    await page.locator('#detail-charts .chart[data-chart="latency"]').waitFor({ timeout: 15000 })
      .catch(() => dead("the detail view has no latency chart"));
    pass("the model's detail view shows its versions, the log tail section and larger charts");
    await page.screenshot({ path: path.join(out, "detail.png"), fullPage: true });

    // Only the registry was asked for anything.
    const foreign = requests.filter((r) => {
      try { return new URL(r).origin !== origin; } catch (e) { return !r.startsWith("data:"); }
    }).filter((r) => !r.startsWith("data:"));
    if (foreign.length) fail(`the page asked other hosts: ${foreign.slice(0, 5).join(" ")}`);
    pass(`all ${requests.length} requests of the page went to ${origin}`);
    if (failed.length) fail(`requests failed: ${failed.slice(0, 5).join(" ")}`);
    if (consoleErrors.length) fail(`the page logged errors: ${consoleErrors.slice(0, 3).join(" | ")}`);
    pass("no script errors");
    console.log(`screenshots: ${path.join(out, "dashboard.png")} ${path.join(out, "detail.png")}`);
  } catch (e) {
    console.error(`FAIL: ${e && e.message ? e.message.split("\n")[0] : e}`);
    exitCode = 1;
  } finally {
    await ctx.close().catch(() => {});
  }
  process.exit(exitCode);
})().catch((e) => fail(e && e.message ? e.message.split("\n")[0] : String(e)));

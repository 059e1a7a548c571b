// Drives the web console in headless Chromium and prints, as one JSON object,
// what a person would see. tests/tests/console.rs starts the host, sends the
// traffic and judges the output.
//
// usage: node console.mjs CONTROL_URL TOKEN DISTRIBUTION_ID
import { chromium } from "playwright-core";

const [base, token, id] = process.argv.slice(2);
if (!base || !token || !id) {
  console.error("usage: node console.mjs CONTROL_URL TOKEN DISTRIBUTION_ID");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.EDGE_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const seen = { console_errors: [] };
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => seen.console_errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") seen.console_errors.push(m.text());
  });
  const text = (selector) => page.locator(selector).first().textContent({ timeout: 10000 });

  // Without a token the console asks for one; a wrong one is refused.
  await page.goto(base + "/console/");
  await page.locator("#login").waitFor({ state: "visible", timeout: 10000 });
  await page.fill("#token", "not-the-token");
  await page.click("#login-form button");
  await page.waitForFunction(() => document.querySelector("#login-error").textContent.length > 0, null, { timeout: 10000 });
  seen.wrong_token = { login_visible: await page.isVisible("#login"), message: await text("#login-error") };
  // The refusals above are expected; from here on the page must see no errors.
  seen.console_errors.length = 0;

  // With the token in the fragment it opens, and drops the token from the address.
  await page.goto(base + "/console/#token=" + encodeURIComponent(token));
  const listRow = page.locator(`#distributions tbody tr[data-id="${id}"]`);
  await listRow.waitFor({ timeout: 10000 });
  seen.address_after_login = page.url();
  seen.list = await page.$$eval("#distributions tbody tr", (rows) =>
    rows.map((r) => Array.from(r.querySelectorAll("td"), (td) => td.textContent)),
  );
  seen.health = await text("#health");

  // The distribution's page.
  await listRow.locator("a").click();
  await page.locator("#detail").waitFor({ state: "visible", timeout: 10000 });
  await page.waitForFunction((want) => document.querySelector("#detail-id").textContent === want, id, { timeout: 10000 });
  await page.locator("#behaviors tbody tr").first().waitFor({ timeout: 10000 });
  seen.detail = {
    id: await text("#detail-id"),
    status: await text("#detail-status"),
    etag: await text("#detail-etag"),
    origins: await page.$$eval("#origins tbody tr", (rows) => rows.map((r) => Array.from(r.querySelectorAll("td"), (td) => td.textContent))),
    behaviors: await page.$$eval("#behaviors tbody tr", (rows) => rows.map((r) => Array.from(r.querySelectorAll("td"), (td) => td.textContent))),
  };
  await page.locator("#split-policy").waitFor({ state: "visible", timeout: 10000 });
  seen.split = {
    policy: await text("#split-id"),
    enabled: await text("#split-enabled"),
    rule: await text("#split-rule"),
    staging: await text("#split-staging"),
    gate: await text("#split-gate"),
  };

  // Live rates: wait until both arms show traffic over an interval.
  await page.waitForFunction(
    () =>
      ["primary", "staging"].every((arm) => {
        const cell = document.querySelector(`#rates tr[data-arm="${arm}"] .rps`);
        return Number.parseFloat(cell.textContent) > 0;
      }),
    null,
    { timeout: 20000, polling: 250 },
  );
  seen.rates = await page.$$eval("#rates tbody tr", (rows) =>
    Object.fromEntries(
      rows.map((r) => [
        r.dataset.arm,
        {
          rps: r.querySelector(".rps").textContent,
          eps: r.querySelector(".eps").textContent,
          erate: r.querySelector(".erate").textContent,
          total: r.querySelector(".total").textContent,
          errors: r.querySelector(".errors").textContent,
        },
      ]),
    ),
  );

  // The invalidation form.
  await page.fill("#invalidate-paths", "/cached\n/img/*");
  await page.click("#invalidate-submit");
  await page.waitForFunction(() => document.querySelector("#invalidate-result").textContent.startsWith("Invalidation"), null, { timeout: 10000 });
  seen.invalidation_result = await text("#invalidate-result");
  await page.locator("#invalidations tbody tr").first().waitFor({ timeout: 10000 });
  seen.invalidations = await page.$$eval("#invalidations tbody tr", (rows) =>
    rows.map((r) => Array.from(r.querySelectorAll("td"), (td) => td.textContent)),
  );
  // The staging distribution's page says whose viewers it serves.
  const stagingId = seen.split.staging;
  await page.locator(`#distributions tbody tr[data-id="${stagingId}"] a`).click();
  await page.waitForFunction((want) => document.querySelector("#detail-id").textContent === want, stagingId, { timeout: 10000 });
  await page.locator("#split-staged").waitFor({ state: "visible", timeout: 10000 });
  await page.waitForFunction(() => document.querySelector("#split-staged").textContent.length > 0, null, { timeout: 10000 });
  seen.staging_page = {
    staged: await text("#split-staged"),
    none_visible: await page.isVisible("#split-none"),
  };
  if (process.env.EDGE_CONSOLE_SCREENSHOT) {
    // EDGE_CONSOLE_SCREENSHOT=/tmp/console.png keeps a picture of the page.
    await page.screenshot({ path: process.env.EDGE_CONSOLE_SCREENSHOT, fullPage: true });
  }
} catch (e) {
  seen.failure = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(seen) + "\n");

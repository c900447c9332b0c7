// Opens GraphiQL (served by the graphql service through Envoy) in headless Debian Chromium with
// playwright-core, types a query into its editor, runs it, and prints the result pane's text.
// Usage: NODE_PATH=<cache>/node_modules node graphiql.cjs <https url of /graphql> <query>
'use strict';
const { chromium } = require('playwright-core');

async function main() {
  const [url, query] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CONDUIT_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  try {
    // The mesh's local CA is not in Chromium's store: the page is loopback-only test traffic.
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const blocked = [];
    page.on('request', (request) => {
      const target = new URL(request.url());
      if (!['localhost', '127.0.0.1'].includes(target.hostname) && target.protocol !== 'data:') {
        blocked.push(request.url());
      }
    });
    await page.goto(url, { waitUntil: 'networkidle', timeout: 60000 });
    const editor = page.locator('.graphiql-query-editor .CodeMirror').first();
    await editor.waitFor({ timeout: 60000 });
    await page.evaluate((text) => {
      document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(text);
    }, query);
    await page.locator('.graphiql-execute-button').click();
    const result = page.locator('.graphiql-response .CodeMirror');
    await page.waitForFunction(() => {
      const pane = document.querySelector('.graphiql-response .CodeMirror');
      return pane && pane.CodeMirror.getValue().includes('"data"');
    }, null, { timeout: 60000 });
    const text = await result.evaluate((node) => node.CodeMirror.getValue());
    process.stdout.write(JSON.stringify({ result: JSON.parse(text), offLoopback: blocked }) + '\n');
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + '\n');
  process.exit(1);
});

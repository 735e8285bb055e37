// Screenshots are artifacts for people (test-artifacts/), not assertions: Chromium sometimes
// answers "Unable to capture screenshot" on a loaded machine (seen in a CI run), so one is tried
// three times and then only reported. What a test checks, it checks with assertions.
import type { Page } from 'playwright-core';

export async function screenshot(page: Page, path: string, fullPage = false): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await page.screenshot({ path, fullPage });
      return;
    } catch (e) {
      if (attempt === 3) {
        process.stderr.write(`      (screenshot ${path} not taken: ${(e as Error).message.split('\n')[0] ?? ''})\n`);
        return;
      }
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
}

// Launches Debian's headless Chromium (or CHROMIUM) for the browser tests: playwright-core
// downloads no browser. The flags keep it off the network this machine does not have.

import { chromium } from 'playwright-core';

export const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';

export function launch() {
  return chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

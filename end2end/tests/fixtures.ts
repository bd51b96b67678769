import { test as base, expect, Page } from '@playwright/test';

export const DEMO = { email: 'dev@example.com', password: 'hexabase-demo' };

// Every test fails on any uncaught page error: a hydration failure is otherwise silent,
// because the server-rendered HTML still looks right.
export const test = base.extend<{ page: Page }>({
  page: async ({ page }, use) => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().includes('the server responded with a status of')) errors.push(m.text());
    });
    await use(page);
    expect(errors, 'uncaught errors in the page').toEqual([]);
  },
});

export { expect };

/** Waits until the wasm bundle has hydrated the page (the hydrate script marks <body>). */
export async function hydrated(page: Page) {
  await page.waitForFunction(() => (window as any).__hexabase_hydrated === true, null, { timeout: 20_000 });
}

/** Submits the sign-in form (whatever the outcome). */
export async function submitSignIn(page: Page, email: string, password: string) {
  await page.goto('/login');
  await hydrated(page);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Signs in and waits until the dashboard opened, so the session cookie is set. */
export async function signIn(page: Page, email = DEMO.email, password = DEMO.password) {
  await submitSignIn(page, email, password);
  await expect(page).toHaveURL(/\/w\/[a-z0-9-]+\/nodes$/);
}

/** Adds a dedicated node of the recommended size in Tokyo and waits until it is Ready; returns its name. */
export async function provisionNode(page: Page): Promise<string> {
  await page.goto('/w/acme-production/nodes/new');
  await hydrated(page);
  await page.getByLabel('Region').selectOption('ap-northeast-1');
  await page.getByRole('button', { name: 'Start Provisioning' }).click();
  await expect(page).toHaveURL(/\/nodes\/acme-production-[0-9a-f]+$/);
  await expect(page.getByTestId('phase')).toContainText('Ready', { timeout: 30_000 });
  return page.url().split('/').pop()!;
}

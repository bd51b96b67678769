import { test as base, expect, Page } from '@playwright/test';

export const DEMO = { email: 'dev@example.com', password: 'hexabase-demo' };

type Fixtures = {
  page: Page;
  /** Console errors a test provokes on purpose (a refused sign-in answers 422), as patterns. */
  expectedErrors: RegExp[];
};

// Every test fails on any uncaught page error and on every console error, failed requests
// ("the server responded with a status of …") included: a hydration failure is otherwise
// silent, because the server-rendered HTML still looks right, and a request that fails in
// the background is a defect a user would meet. A test that provokes an error says so.
export const test = base.extend<Fixtures>({
  expectedErrors: [[], { option: true }],
  page: async ({ page, expectedErrors }, use) => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const text = `${m.text()} (${m.location().url})`;
      if (!expectedErrors.some((re) => re.test(text))) errors.push(text);
    });
    await use(page);
    expect(errors, 'errors in the browser console').toEqual([]);
  },
});

export { expect };

/** Waits until the wasm bundle has hydrated the page (the hydrate script marks the window). */
export async function hydrated(page: Page) {
  await page.waitForFunction(() => (window as any).__hexabase_hydrated === true, null, { timeout: 20_000 });
}

/** Opens a page and waits until it is interactive. */
export async function open(page: Page, url: string) {
  await page.goto(url);
  await hydrated(page);
}

/** Submits the sign-in form (whatever the outcome). */
export async function submitSignIn(page: Page, email: string, password: string) {
  await open(page, '/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Signs in and waits until the dashboard opened and hydrated, so the session cookie is set. */
export async function signIn(page: Page, email = DEMO.email, password = DEMO.password) {
  await submitSignIn(page, email, password);
  await expect(page).toHaveURL(/\/w\/[a-z0-9-]+\/nodes$/);
  await hydrated(page);
}

/** Adds a dedicated node of the recommended size in Tokyo and waits until it is Ready; returns its name. */
export async function provisionNode(page: Page): Promise<string> {
  await open(page, '/w/acme-production/nodes/new');
  await page.getByLabel('Region').selectOption('ap-northeast-1');
  await page.getByRole('button', { name: 'Start Provisioning' }).click();
  await expect(page).toHaveURL(/\/nodes\/acme-production-[0-9a-f]+$/);
  await hydrated(page);
  await expect(page.getByTestId('phase')).toContainText('Ready', { timeout: 30_000 });
  return page.url().split('/').pop()!;
}

/**
 * The Kubernetes Node a Ready dedicated node runs on. The provider names it (Karpenter: not
 * the order's name), and the Workload Migration screen lists nodes by it, so it is read from
 * the node's progress, the server function the progress page loads.
 */
export async function nodeOf(page: Page, order: string, workspace = 'acme-production'): Promise<string> {
  const origin = new URL(page.url()).origin;
  const res = await page.request.post('/api/load_node_progress', { form: { workspace, name: order }, headers: { Origin: origin } });
  expect(res.ok(), `load_node_progress ${order}: ${res.status()}`).toBeTruthy();
  const progress = (await res.json()).item;
  expect(progress.node_name, `${order} runs on a Node`).toBeTruthy();
  return progress.node_name as string;
}

/** The row of a workload on the Workload Migration screen. */
export function workloadRow(page: Page, kind: string, name: string, namespace = 'acme-production') {
  return page.locator(`tr[data-workload="${namespace}/${kind}/${name}"]`);
}

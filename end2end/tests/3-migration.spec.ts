import { test, expect, hydrated, signIn, provisionNode } from './fixtures';

test('the whole use case: dedicated node, Migrate to Dedicated Node, zero downtime, completion report', async ({ page }) => {
  await signIn(page);
  await expect(page.getByRole('heading', { name: 'Node Management' })).toBeVisible();
  const node = await provisionNode(page);

  await page.getByRole('link', { name: 'Workload Migration' }).first().click();
  await expect(page.getByRole('heading', { name: 'Workload Migration' })).toBeVisible();
  await hydrated(page);
  await page.getByLabel('Dedicated node').selectOption(node);
  const web = page.locator('tr[data-workload="Deployment/web"]');
  await expect(web).toContainText('Guaranteed');
  await expect(page.locator('tr[data-workload="Deployment/worker"]')).toContainText('One replica');
  await page.getByLabel('Migrate Deployment/web').check();
  await expect(page.getByTestId('fit-check')).toContainText('Fits the node');
  await expect(page.getByTestId('dry-run')).toContainText('1. Deployment/web');
  await expect(page.getByTestId('dry-run')).toContainText(`Select node ${node}`);

  await page.getByRole('button', { name: 'Migrate to Dedicated Node' }).click();
  await expect(page).toHaveURL(/\/w\/acme-production\/migrations\/mig-[0-9a-f]+$/);
  await hydrated(page);
  await expect(page.getByTestId('migration-phase')).toContainText('Succeeded', { timeout: 120_000 });
  const report = page.getByTestId('completion-report');
  await expect(report).toContainText('Zero downtime');
  await expect(report).toContainText('Deployment/web: lowest available 3 of 3 desired');
  // Step 16: the improvement in the workspace's own numbers.
  const improvement = page.getByTestId('improvement');
  await expect(improvement).toContainText('a share of a 8 vCPU quota');
  await expect(improvement).toContainText(`guaranteed on ${node}`);
  await expect(improvement).toContainText('3 on the dedicated node');

  // Step 17: the node now carries the app's requests.
  await page.getByRole('link', { name: 'See the node in Node Management' }).click();
  await expect(page.locator(`tr[data-node="${node}"]`)).toContainText('1.5 /');
});

test('a migration that cannot schedule rolls back automatically and explains why', async ({ page }) => {
  await signIn(page);
  await expect(page.getByRole('heading', { name: 'Node Management' })).toBeVisible();
  const node = await provisionNode(page);
  await page.goto('/w/acme-production/migrations');
  await hydrated(page);
  await page.getByLabel('Dedicated node').selectOption(node);
  await page.getByLabel('Migrate Deployment/reports').check();
  await expect(page.getByTestId('fit-check')).toContainText('Fits the node');
  await page.getByRole('button', { name: 'Migrate to Dedicated Node' }).click();

  await expect(page.getByTestId('migration-phase')).toContainText('RolledBack', { timeout: 120_000 });
  await expect(page.getByTestId('rollback-cause')).toContainText(/anti-affinity/);
  await expect(page.getByRole('button', { name: 'Retry migration' })).toBeVisible();
  await page.goto('/w/acme-production/migrations');
  await expect(page.locator('tr[data-workload="Deployment/reports"]')).not.toContainText('On ');
});

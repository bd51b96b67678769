import { test, expect, hydrated, open, signIn } from './fixtures';

test('Add Dedicated Node: cost estimate, size warning, Start Provisioning, live progress, ready notification', async ({ page }) => {
  await signIn(page);
  await expect(page.getByRole('heading', { name: 'Node Management' })).toBeVisible();
  // The seeded production workloads request 2.7 vCPU of the Pro plan's shared-pool quota of 8.
  const pool = page.getByTestId('shared-pool');
  await expect(pool).toContainText('CPU requests');
  await expect(pool).toContainText('2.7 / 8 vCPU');
  await expect(pool).toContainText('9 / 40 pods');
  await expect(pool).toContainText('3 nodes shared with 2 other workspaces');

  await page.getByRole('link', { name: 'Add Dedicated Node' }).click();
  await expect(page.getByRole('heading', { name: 'Add Dedicated Node' })).toBeVisible();
  await hydrated(page);
  await expect(page.getByTestId('need')).toContainText('20% headroom');

  // Too small: d2.large cannot hold the workloads plus surge with 20% headroom. The radio is
  // the control itself, checkable like any other.
  await page.getByRole('radio', { name: /d2\.large/ }).check();
  const estimate = page.getByTestId('estimate');
  await expect(estimate).toContainText('$70.08');
  await expect(estimate.getByRole('alert')).toContainText('This size is too small for your workloads');
  await estimate.getByRole('button', { name: 'Switch to d4.xlarge' }).click();
  await expect(estimate).toContainText('$140.16');
  await expect(estimate.getByRole('alert')).toHaveCount(0);
  // Every sentence from the workspace's own numbers.
  await expect(estimate).toContainText('Today: 2.7 of your 8 vCPU shared-pool quota, on 3 nodes shared with 2 other workspaces.');
  await expect(estimate).not.toContainText('Steadier latency');
  await expect(page.getByRole('radio', { name: /d4\.xlarge/ })).toBeChecked();

  await page.getByLabel('Region').selectOption('ap-northeast-1');
  await page.getByRole('button', { name: 'Start Provisioning' }).click();

  await expect(page).toHaveURL(/\/w\/acme-production\/nodes\/acme-production-[0-9a-f]+$/);
  await hydrated(page);
  const steps = page.getByTestId('steps');
  await expect(steps.locator('[data-step="CapacityReserved"]')).toHaveAttribute('data-state', 'Done');
  await expect(steps.locator('[data-step="Ready"]')).toHaveAttribute('data-state', 'Done', { timeout: 30_000 });
  // Ready fills the bar; each step says how long it took, in a time a person reads.
  await expect(page.getByRole('progressbar', { name: 'Provisioning progress' })).toHaveAttribute('aria-valuenow', '100');
  await expect(steps.locator('[data-step="Booting"]')).toContainText(/took \d+\.\d s/);
  await expect(steps).not.toContainText(/\d{2}:\d{2}:\d{2}\.\d+/);
  await expect(page.getByRole('status').filter({ hasText: 'Dedicated node ready' })).toBeVisible();
  await expect(page.getByTestId('unread-count')).toBeVisible();
  const nodeName = page.url().split('/').pop()!;

  // The bell says when it happened and links to the node.
  await page.getByRole('button', { name: 'Notifications' }).click();
  const note = page.getByRole('dialog', { name: 'Notifications' }).getByRole('link').filter({ hasText: nodeName }).first();
  await expect(note).toContainText('just now');
  await page.keyboard.press('Escape');

  await page.getByRole('link', { name: 'Node Management' }).click();
  const row = page.locator(`tr[data-node="${nodeName}"]`);
  await expect(row).toContainText('Ready');
  await expect(row).toContainText('d4.xlarge');
  await expect(row).toContainText('ap-northeast-1');

  // Deleting an unused node asks first, then removes it.
  await row.getByRole('button', { name: 'Delete' }).click();
  const dialog = page.getByRole('alertdialog');
  await expect(dialog).toContainText(`Delete dedicated node ${nodeName}?`);
  await dialog.getByRole('button', { name: 'Delete node' }).click();
  await expect(row).toHaveCount(0, { timeout: 30_000 });
});

test('a region without capacity fails with alternatives, one click provisions elsewhere, and a dismissed failure leaves the list', async ({ page }) => {
  test.setTimeout(120_000);
  await signIn(page);
  await open(page, '/w/acme-production/nodes/new');
  await page.getByLabel('Region').selectOption('ap-northeast-3');
  await page.getByRole('button', { name: 'Start Provisioning' }).click();

  await expect(page).toHaveURL(/\/nodes\/acme-production-[0-9a-f]+$/);
  await hydrated(page);
  const failedUrl = page.url();
  const failedName = failedUrl.split('/').pop()!;
  await expect(page.getByTestId('phase')).toContainText('Failed');
  await expect(page.getByRole('alert').first()).toContainText('InsufficientCapacity');
  await expect(page.getByRole('alert').first()).toContainText('ap-northeast-3');
  const alternatives = page.getByTestId('alternatives');
  await expect(alternatives).toContainText('ap-northeast-1');

  // The failure is listed apart from the nodes, until retried or dismissed.
  await open(page, '/w/acme-production/nodes');
  const failures = page.getByTestId('failed-requests');
  await expect(failures.locator(`[data-node="${failedName}"]`)).toContainText('No capacity left');
  await expect(page.locator(`tr[data-node="${failedName}"]`)).toHaveCount(0);

  await open(page, failedUrl);
  await page.getByTestId('alternatives').getByRole('button', { name: /in ap-northeast-1/ }).first().click();
  await expect(page).not.toHaveURL(failedUrl);
  await expect(page.getByTestId('phase')).toContainText('Ready', { timeout: 30_000 });
  // Nothing is left of the failed try.
  await page.goto(failedUrl);
  await expect(page.getByRole('alert')).toContainText('No dedicated node');

  // A second sold-out attempt, dismissed from Node Management.
  await open(page, '/w/acme-production/nodes/new');
  await page.getByLabel('Region').selectOption('ap-northeast-3');
  await page.getByRole('button', { name: 'Start Provisioning' }).click();
  await expect(page.getByTestId('phase')).toContainText('Failed');
  const second = page.url().split('/').pop()!;
  await open(page, '/w/acme-production/nodes');
  const entry = page.getByTestId('failed-requests').locator(`[data-node="${second}"]`);
  await entry.getByRole('button', { name: 'Dismiss' }).click();
  await expect(entry).toHaveCount(0);
  await expect(page.getByTestId('failed-requests')).toHaveCount(0);
});

test('a Hobby workspace is told why it cannot add a dedicated node', async ({ page }) => {
  await signIn(page);
  await open(page, '/w/acme-sandbox/nodes/new');
  await expect(page.getByRole('alert')).toContainText('Dedicated nodes are part of the Pro plan');
});

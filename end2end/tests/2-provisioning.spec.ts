import { test, expect, hydrated, signIn } from './fixtures';

test('Add Dedicated Node: cost estimate, size warning, Start Provisioning, live progress, ready notification', async ({ page }) => {
  await signIn(page);
  await expect(page.getByRole('heading', { name: 'Node Management' })).toBeVisible();
  // The seeded production workloads request 2.7 vCPU of the Pro quota of 8.
  const pool = page.getByTestId('shared-pool');
  await expect(pool).toContainText('CPU requests');
  await expect(pool).toContainText('2.7 / 8 vCPU');
  await expect(pool).toContainText('9 / 40 pods');

  await page.getByRole('link', { name: 'Add Dedicated Node' }).click();
  await expect(page.getByRole('heading', { name: 'Add Dedicated Node' })).toBeVisible();
  await hydrated(page);

  // Too small: d2.large cannot hold 2.5 vCPU + surge with 20% headroom.
  await page.getByText('d2.large', { exact: true }).click();
  const estimate = page.getByTestId('estimate');
  await expect(estimate).toContainText('$70.08');
  await expect(estimate.getByRole('alert')).toContainText('This size is too small for your workloads');
  await estimate.getByRole('button', { name: 'Switch to d4.xlarge' }).click();
  await expect(estimate).toContainText('$140.16');
  await expect(estimate.getByRole('alert')).toHaveCount(0);
  await expect(estimate).toContainText('No noisy neighbours');
  await expect(page.getByRole('radio', { name: /d4\.xlarge/ })).toBeChecked();

  await page.getByLabel('Region').selectOption('ap-northeast-1');
  await page.getByRole('button', { name: 'Start Provisioning' }).click();

  await expect(page).toHaveURL(/\/w\/acme-production\/nodes\/acme-production-[0-9a-f]+$/);
  await hydrated(page);
  const steps = page.getByTestId('steps');
  await expect(steps.locator('[data-step="CapacityReserved"]')).toHaveAttribute('data-state', 'Done');
  await expect(steps.locator('[data-step="Ready"]')).toHaveAttribute('data-state', 'Done', { timeout: 30_000 });
  await expect(page.getByRole('status')).toContainText('Dedicated node ready');
  await expect(page.getByTestId('unread-count')).toBeVisible();
  const nodeName = page.url().split('/').pop()!;

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

test('a region without capacity fails with alternatives, and one click provisions elsewhere', async ({ page }) => {
  await signIn(page);
  await page.goto('/w/acme-production/nodes/new');
  await hydrated(page);
  await page.getByLabel('Region').selectOption('ap-northeast-3');
  await page.getByRole('button', { name: 'Start Provisioning' }).click();

  await expect(page).toHaveURL(/\/nodes\/acme-production-[0-9a-f]+$/);
  const failedUrl = page.url();
  await expect(page.getByTestId('phase')).toContainText('Failed');
  await expect(page.getByRole('alert').first()).toContainText('InsufficientCapacity');
  await expect(page.getByRole('alert').first()).toContainText('ap-northeast-3');
  const alternatives = page.getByTestId('alternatives');
  await expect(alternatives).toContainText('ap-northeast-1');
  await hydrated(page);
  await alternatives.getByRole('button', { name: /in ap-northeast-1/ }).first().click();

  await expect(page).not.toHaveURL(failedUrl);
  await expect(page.getByTestId('phase')).toContainText('Ready', { timeout: 30_000 });
  // Nothing is left of the failed try.
  await page.goto(failedUrl);
  await expect(page.getByRole('alert')).toContainText('No dedicated node');
});

test('a Hobby workspace is told why it cannot add a dedicated node', async ({ page }) => {
  await signIn(page);
  await page.goto('/w/acme-sandbox/nodes/new');
  await expect(page.getByRole('alert')).toContainText('Dedicated nodes are part of the Pro plan');
});

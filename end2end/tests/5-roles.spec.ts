import { test, expect, open, signIn } from './fixtures';

// The seeded viewer of acme-production (README, "demo accounts"): reads everything, changes
// nothing, and is told why instead of meeting an error after the fact.
const VIEWER = { email: 'viewer@example.com', password: 'hexabase-demo' };

test('a viewer sees the dedicated-node actions disabled, with the reason', async ({ page }) => {
  await signIn(page, VIEWER.email, VIEWER.password);
  await expect(page).toHaveURL(/\/w\/acme-production\/nodes$/);
  await expect(page.getByRole('heading', { name: 'Node Management' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Add Dedicated Node' })).toBeDisabled();
  await expect(page.getByTestId('role-notice').first()).toContainText('Your role in this workspace (viewer) cannot add, retry or delete dedicated nodes');

  // The wizard itself, opened by its address: it prices sizes, but will not start provisioning.
  await open(page, '/w/acme-production/nodes/new');
  await expect(page.getByRole('button', { name: 'Start Provisioning' })).toBeDisabled();
  await expect(page.getByTestId('role-notice')).toContainText('an owner or admin can');
});

import { test, expect, hydrated, open, signIn, submitSignIn, DEMO } from './fixtures';

test('signs in, sees Node Management, switches workspace, signs out', async ({ page }) => {
  await signIn(page);
  await expect(page).toHaveURL(/\/w\/acme-production\/nodes$/);
  await expect(page.getByRole('heading', { name: 'Node Management' })).toBeVisible();
  await expect(page.getByText('acme-production · Pro plan')).toBeVisible();

  // The switcher is a menu that only opens once the page is hydrated.
  await page.getByRole('button', { name: /Workspace/ }).click();
  await page.getByRole('menuitem', { name: /acme-sandbox/ }).click();
  await expect(page).toHaveURL(/\/w\/acme-sandbox\/nodes$/);
  await expect(page.getByText('acme-sandbox · Hobby plan')).toBeVisible();
  await expect(page.getByTestId('upgrade-notice')).toContainText('Dedicated nodes are not part of the Hobby plan');
  await expect(page.getByRole('link', { name: 'Add Dedicated Node' })).toHaveCount(0);

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login/);
  await page.goto('/w/acme-production/nodes');
  await expect(page).toHaveURL(/\/login\?next=/);
});

test.describe('a refused sign-in', () => {
  // The refusal is a 422 answer, which the browser logs.
  test.use({ expectedErrors: [/status of 422/] });

  test('a wrong password shows an error and stays signed out', async ({ page }) => {
    await submitSignIn(page, DEMO.email, 'not-the-password');
    await expect(page.getByRole('alert')).toContainText('The email or password is not right.');
    await expect(page).toHaveURL(/\/login/);
  });
});

test('a signed-out visit redirects to sign-in and comes back after it', async ({ page }) => {
  await page.goto('/w/acme-sandbox/nodes');
  await expect(page).toHaveURL(/\/login\?next=%2F|\/login\?next=\//);
  await hydrated(page);
  await page.getByLabel('Email').fill(DEMO.email);
  await page.getByLabel('Password').fill(DEMO.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/w\/acme-sandbox\/nodes$/);
});

test('the keyboard reaches the workspace switcher and Escape closes it', async ({ page }) => {
  await signIn(page);
  await expect(page.getByRole('heading', { name: 'Node Management' })).toBeVisible();
  const switcher = page.getByRole('button', { name: /Workspace/ });
  await switcher.focus();
  await page.keyboard.press('Enter');
  await expect(page.getByRole('menu')).toBeVisible();
  await page.keyboard.press('Escape');
  await expect(page.getByRole('menu')).toHaveCount(0);
});

test('on a phone the sections are one tap away and nothing runs off the screen', async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await signIn(page);
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Workload Migration' }).click();
  await expect(page.getByRole('heading', { name: 'Workload Migration' })).toBeVisible();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow, 'horizontal overflow on a phone').toBeLessThanOrEqual(0);
  await open(page, '/w/acme-production/nodes');
  const nodesOverflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(nodesOverflow, 'horizontal overflow of Node Management on a phone').toBeLessThanOrEqual(0);
});

import { test, expect, hydrated, signIn, submitSignIn, DEMO } from './fixtures';

test('signs in, sees Node Management, switches workspace, signs out', async ({ page }) => {
  await signIn(page);
  await expect(page).toHaveURL(/\/w\/acme-production\/nodes$/);
  await expect(page.getByRole('heading', { name: 'Node Management' })).toBeVisible();
  await expect(page.getByText('acme-production · Pro plan')).toBeVisible();
  await hydrated(page);

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

test('a wrong password shows an error and stays signed out', async ({ page }) => {
  await submitSignIn(page, DEMO.email, 'not-the-password');
  await expect(page.getByRole('alert')).toContainText('The email or password is not right.');
  await expect(page).toHaveURL(/\/login/);
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
  await hydrated(page);
  const switcher = page.getByRole('button', { name: /Workspace/ });
  await switcher.focus();
  await page.keyboard.press('Enter');
  await expect(page.getByRole('menu')).toBeVisible();
  await page.keyboard.press('Escape');
  await expect(page.getByRole('menu')).toHaveCount(0);
});

import { execFileSync } from 'node:child_process';
import { test, expect, open, signIn } from './fixtures';

// Node Management is live: a change made in the cluster by someone else (here kubectl, as a
// platform admin would) reaches an open page without a reload, over the server's shared
// watch; and a page that closes gives its stream back (the server's open-stream gauge).

const kubectl = (...args: string[]) => {
  const bin = process.env.KUBECTL;
  if (!bin) throw new Error('KUBECTL is not set: hack/test.sh exports the cluster\'s kubectl');
  return execFileSync(bin, args, { encoding: 'utf8' });
};

const setPodQuota = (pods: number) =>
  kubectl('-n', 'acme-production', 'patch', 'resourcequota', 'workspace-quota', '--type', 'merge', '-p', JSON.stringify({ spec: { hard: { pods: String(pods) } } }));

const openStreams = async (request: any, baseURL: string) => {
  const text: string = await (await request.get(`${baseURL}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('hexabase_live_streams_open'));
  return Number(line?.split(' ')[1] ?? NaN);
};

test('a quota changed with kubectl shows on the open page within a second, without reload', async ({ page, request, baseURL }) => {
  await signIn(page);
  await open(page, '/w/acme-production/nodes');
  const pods = page.locator('[data-meter="Pods"]');
  await expect(pods).toContainText('/ 40 pods');
  // Navigations would reset this; the page must only be updated in place.
  await page.evaluate(() => ((window as any).__same_page = true));
  try {
    setPodQuota(41);
    await expect(pods).toContainText('/ 41 pods', { timeout: 1_000 });
    setPodQuota(40);
    await expect(pods).toContainText('/ 40 pods', { timeout: 1_000 });
  } finally {
    setPodQuota(40);
  }
  expect(await page.evaluate(() => (window as any).__same_page)).toBe(true);

  expect(await openStreams(request, baseURL!)).toBeGreaterThan(0);
  await page.close();
  await expect.poll(() => openStreams(request, baseURL!), { timeout: 10_000 }).toBe(0);
});

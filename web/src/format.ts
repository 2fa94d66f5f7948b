// How the page writes numbers: one formatter for money, one for token
// counts, one for moments, so every section reads the same.

const tokenCount = new Intl.NumberFormat('en', { maximumFractionDigits: 0 });
// Prices are fractions of a cent per token: small costs keep their digits
// (up to six), whole amounts show cents.
const usd = new Intl.NumberFormat('en', {
  style: 'currency',
  currency: 'USD',
  minimumFractionDigits: 2,
  maximumFractionDigits: 6,
});
const moment = new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeStyle: 'short' });

/// A cost in US dollars. The API sends costs as JSON numbers or as decimal
/// strings (a ledger row's exact `numeric`); both read the same here.
export function formatCost(value: number | string): string {
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isFinite(n) ? usd.format(n) : '—';
}

/// A number of tokens (or requests): whole, with thousands separators.
export function formatTokens(value: number): string {
  return tokenCount.format(value);
}

export function formatMoment(iso: string): string {
  return moment.format(new Date(iso));
}

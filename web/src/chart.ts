// Daily tokens per model as a stacked bar chart (Chart.js, only the parts a
// bar chart uses, so the bundle stays small).
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  Tooltip,
} from 'chart.js';
import type { Overview } from './api';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip);

// Distinguishable colours, dark enough for text contrast on white.
const PALETTE = ['#1f77b4', '#d95f02', '#1b9e77', '#7570b3', '#e7298a', '#66a61e', '#a6761d', '#525252'];

let chart: Chart<'bar'> | null = null;

/// Every UTC day from `from` to `to` (YYYY-MM-DD), so days without usage
/// show as gaps rather than vanish.
export function daysBetween(from: string, to: string): string[] {
  const days: string[] = [];
  const end = Date.parse(`${to}T00:00:00Z`);
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= end && days.length <= 400; t += 86_400_000) {
    days.push(new Date(t).toISOString().slice(0, 10));
  }
  return days;
}

export function drawUsage(canvas: HTMLCanvasElement, overview: Overview): void {
  const days = daysBetween(overview.from, overview.to);
  const models = [...new Set(overview.by_day_model.map((r) => r.model))].sort();
  const datasets = models.map((model, i) => {
    const perDay = new Map(
      overview.by_day_model.filter((r) => r.model === model).map((r) => [r.day, r.total_tokens]),
    );
    return {
      label: model,
      data: days.map((d) => perDay.get(d) ?? 0),
      backgroundColor: PALETTE[i % PALETTE.length],
    };
  });
  const labels = days.map((d) => d.slice(5));
  // What is drawn, readable without pixels (the browser test checks it).
  canvas.dataset.series = JSON.stringify({
    days,
    models: datasets.map((d) => ({ model: d.label, tokens: d.data })),
  });
  if (chart) {
    chart.data.labels = labels;
    chart.data.datasets = datasets;
    chart.update();
    return;
  }
  chart = new Chart(canvas, {
    type: 'bar',
    data: { labels, datasets },
    options: {
      animation: false,
      maintainAspectRatio: false,
      scales: {
        x: { stacked: true },
        y: { stacked: true, beginAtZero: true, title: { display: true, text: 'tokens' } },
      },
      plugins: { legend: { position: 'bottom' } },
    },
  });
}

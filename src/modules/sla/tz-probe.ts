// Prints deadlines and elapsed times for a fixed set of inputs; the calendar test runs it under
// several process time zones and expects the same bytes each time.
import { Calendar, formatInstant, parseInstant } from './calendar.ts';

const calendars = [
  {
    timeZone: 'America/New_York',
    weekly: {
      mon: [['09:00', '17:00']],
      tue: [
        ['09:00', '12:00'],
        ['13:00', '17:00'],
      ],
      thu: [['22:00', '06:00']],
      fri: [['09:00', '17:00']],
    },
    holidays: ['2026-07-03', '2026-11-26'],
    recurringHolidays: ['01-01', '12-25'],
  },
  { timeZone: 'Asia/Kolkata', weekly: { sun: [['01:00', '04:00']], wed: [['08:30', '18:15']] } },
  { timeZone: 'America/Chicago', alwaysOpen: true },
];
const lines: string[] = [];
for (const spec of calendars) {
  const cal = Calendar.load(spec);
  for (let i = 0; i < 40; i++) {
    const start = parseInstant('2026-01-01T00:00:00Z') + i * 777_777;
    lines.push(
      `${formatInstant(cal.deadline(start, (i * 3571) % 200_000))} ${cal.elapsed(start, start + i * 12_345)}`,
    );
  }
}
process.stdout.write(`${lines.join('\n')}\n`);

/**
 * `Date.prototype.toISOString` for the encoders, at a fraction of its cost:
 * the builtin takes ~1.4 µs per call here, half of what encoding an export
 * row with one Date costs; this takes ~0.1 µs. The calendar date of the
 * last day seen is kept, so rows of the same day (an export, a feed) only
 * format their time. Years outside 0000–9999 (written `±YYYYYY-…` by the
 * builtin) go to the builtin; so does anything but a finite time.
 */

const msPerDay = 86_400_000

let cachedDay = Number.NaN
let cachedPrefix = ""

const two = (n: number): string => (n < 10 ? "0" + n : "" + n)

const three = (n: number): string => (n < 10 ? "00" + n : n < 100 ? "0" + n : "" + n)

/** `YYYY-MM-DDT` of a day counted from 1970-01-01, or undefined outside years 0000–9999. */
const dayPrefix = (day: number): string | undefined => {
  // Days to a civil date (proleptic Gregorian), after H. Hinnant's `civil_from_days`.
  const z = day + 719_468
  const era = Math.floor(z / 146_097)
  const dayOfEra = z - era * 146_097
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365
  )
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100))
  const shiftedMonth = Math.floor((5 * dayOfYear + 2) / 153)
  const dayOfMonth = dayOfYear - Math.floor((153 * shiftedMonth + 2) / 5) + 1
  const month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
  if (year < 0 || year > 9999) return undefined
  const yyyy = year < 10 ? "000" + year : year < 100 ? "00" + year : year < 1000 ? "0" + year : "" + year
  return yyyy + "-" + two(month) + "-" + two(dayOfMonth) + "T"
}

/** The ISO 8601 text of a time in milliseconds since the epoch, exactly as `new Date(time).toISOString()`. */
export const isoString = (time: number): string => {
  const day = Math.floor(time / msPerDay)
  if (day !== cachedDay) {
    const prefix = Number.isFinite(day) ? dayPrefix(day) : undefined
    if (prefix === undefined) return new Date(time).toISOString()
    cachedDay = day
    cachedPrefix = prefix
  }
  let rest = time - day * msPerDay
  const hours = Math.floor(rest / 3_600_000)
  rest -= hours * 3_600_000
  const minutes = Math.floor(rest / 60_000)
  rest -= minutes * 60_000
  const seconds = Math.floor(rest / 1000)
  const millis = rest - seconds * 1000
  return cachedPrefix + two(hours) + ":" + two(minutes) + ":" + two(seconds) + "." + three(millis) + "Z"
}

/** `date.toISOString()` of a valid Date. */
export const ofDate = (date: Date): string => isoString(date.getTime())

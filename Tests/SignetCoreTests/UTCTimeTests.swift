import Glibc
import SignetCore
import SignetTestSupport
import Testing

@Suite("UTC times as text (no Foundation formatters)")
struct UTCTimeTests {
    @Test("Formatting matches known instants")
    func format() {
        #expect(UTCTime.format(0) == "1970-01-01T00:00:00Z")
        #expect(UTCTime.format(1_769_508_000) == "2026-01-27T10:00:00Z")
        #expect(UTCTime.format(1_769_508_000.1234, milliseconds: true) == "2026-01-27T10:00:00.123Z")
        #expect(UTCTime.format(1_769_508_000.005, milliseconds: true) == "2026-01-27T10:00:00.005Z")
        #expect(UTCTime.format(1_769_508_000, separator: " ", suffix: " UTC") == "2026-01-27 10:00:00 UTC")
        #expect(UTCTime.format(951_782_400) == "2000-02-29T00:00:00Z")
    }

    @Test("Calendar arithmetic agrees with glibc's timegm over 400 years of dates")
    func agreesWithTimegm() {
        var state: UInt64 = 0x5157_4e45
        for _ in 0..<20_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let year = 1800 + Int((state >> 33) % 400)
            let month = 1 + Int((state >> 20) % 12)
            let day = 1 + Int((state >> 8) % 28)
            let hour = Int((state >> 40) % 24), minute = Int((state >> 48) % 60), second = Int((state >> 56) % 60)
            var parts = tm()
            parts.tm_year = Int32(year - 1900)
            parts.tm_mon = Int32(month - 1)
            parts.tm_mday = Int32(day)
            parts.tm_hour = Int32(hour)
            parts.tm_min = Int32(minute)
            parts.tm_sec = Int32(second)
            let expected = Double(timegm(&parts))
            #expect(UTCTime.seconds(year: year, month: month, day: day, hour: hour, minute: minute, second: second) == expected)
        }
        #expect(UTCTime.seconds(year: 2025, month: 2, day: 29) == nil)
        #expect(UTCTime.seconds(year: 2026, month: 13, day: 1) == nil)
        #expect(UTCTime.seconds(year: 2026, month: 4, day: 31) == nil)
    }

    @Test("ISO 8601 forms that --at and --since take")
    func parseISO() {
        let tenUTC = 1_769_508_000.0
        #expect(UTCTime.parse("2026-01-27T10:00:00Z") == tenUTC)
        #expect(UTCTime.parse("2026-01-27 10:00:00") == tenUTC)
        #expect(UTCTime.parse("2026-01-27T10:00") == tenUTC)
        #expect(UTCTime.parse("2026-01-27T11:00:00+01:00") == tenUTC)
        #expect(UTCTime.parse("2026-01-27T05:00:00-0500") == tenUTC)
        #expect(UTCTime.parse("2026-01-27T10:00:00.250Z") == tenUTC + 0.25)
        #expect(UTCTime.parse("2026-01-27") == tenUTC - 36_000)
        for bad in ["", "2026", "2026-1-27", "2026-01-27T", "2026-01-27T10", "2026-02-30", "2026-01-27T24:00:00Z",
                    "2026-01-27T10:00:00Q", "2026-01-27T10:00:00.Z", "2026-01-27 10:00:00 extra", "27.01.2026"] {
            #expect(UTCTime.parse(bad) == nil, "\(bad)")
        }
    }

    @Test("RFC 5322 Date: headers parse as GNU date reads them")
    func parseMailDates() throws {
        let headers = [
            "Tue, 27 Jan 2026 10:00:00 +0000",
            "Tue, 27 Jan 2026 11:30:15 +0130",
            "27 Jan 2026 10:00:00 -0800",
            "Mon, 5 Jan 2026 09:07 +0200",
            "Sat, 29 Feb 2020 23:59:59 GMT",
            "Fri, 21 Nov 1997 09:55:06 -0600",
            "Thu, 13 Feb 1969 23:32:54 -0330",
            "Tue, 1 Jul 2003 10:52:37 +0200",
            "Wed, 22 Nov 2026 15:04:17 EST",
            "wed, 22 nov 2026 15:04:17 pdt",
        ]
        for header in headers {
            let gnu = try Run.command("/bin/date", ["-u", "-d", header, "+%s"])
            try #require(gnu.status == 0, "date -d '\(header)': \(gnu.errors)")
            let expected = Double(gnu.output.prefix(while: { $0 != "\n" }))
            #expect(UTCTime.parseMailDate(header) == expected, "\(header)")
        }
        #expect(UTCTime.parseMailDate("Tue, 27 Jan 2026 10:00:00 +0000 (UTC)") == 1_769_508_000)
        #expect(UTCTime.parseMailDate("27 Jan 26 10:00:00 +0000") == 1_769_508_000)
        for bad in ["", "yesterday", "Tue, 27 Foo 2026 10:00:00 +0000", "Tue, 27 Jan 2026 10:00:00", "Tue, 27 Jan 2026 25:00:00 +0000",
                    "Tue, 27 Jan 2026 10:00:00 +9999", "Tue, 32 Jan 2026 10:00:00 +0000", "Tue, 27 Jan 2026 10-00-00 +0000"] {
            #expect(UTCTime.parseMailDate(bad) == nil, "\(bad)")
        }
    }
}

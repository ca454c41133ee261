import SignetCore
import Testing

/// `EditDistance`, behind `signet`'s "Did you mean" for a mistyped command.
@Suite("Edit distance")
struct EditDistanceTests {
    @Test("Insertions, deletions and changes count one each; a swap of neighbouring letters counts one; empty words count the other's length")
    func distances() {
        #expect(EditDistance.between("sign", "sign") == 0)
        #expect(EditDistance.between("sing", "sign") == 1)  // a swap
        #expect(EditDistance.between("sgn", "sign") == 1)
        #expect(EditDistance.between("signs", "sign") == 1)
        #expect(EditDistance.between("verfy", "verify") == 1)
        #expect(EditDistance.between("cert", "csr") == 2)
        #expect(EditDistance.between("", "log") == 3 && EditDistance.between("log", "") == 3)
    }
}

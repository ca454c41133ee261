@testable import SignetMail
import Testing

@Suite("Key references standing in for a locked token's private key")
struct KeyReferenceTests {
    @Test("A public key's URI becomes the private key's: same token and id, no label (cards name the halves differently)")
    func privateKeyURI() {
        let opensc = "pkcs11:model=PKCS%2315%20emulated;manufacturer=piv_II;serial=21;token=PIV;id=%01;object=PIV%20AUTH%20pubkey;type=public"
        #expect(Inventory.Installed.privateKeyURI(standingFor: opensc)
                == "pkcs11:model=PKCS%2315%20emulated;manufacturer=piv_II;serial=21;token=PIV;id=%01;type=private")
        // Without an id the label is all that links the halves: it stays.
        #expect(Inventory.Installed.privateKeyURI(standingFor: "pkcs11:token=T;object=mail;type=public") == "pkcs11:token=T;object=mail;type=private")
    }
}

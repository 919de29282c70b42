//! Chapter 8's exercises. Run one against your code with
//! `cargo test --features mine --test exercise_ch08 proxy_line`.

use std::net::SocketAddr;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

mod proxy_line {
    use proxy_workbench::exercises::answers::ch08::proxy_line;

    use super::addr;

    #[test]
    fn one_line_ending_in_cr_lf() {
        assert_eq!(
            proxy_line(addr("192.0.2.7:51000"), addr("10.0.0.1:6379")),
            "PROXY TCP4 192.0.2.7 10.0.0.1 51000 6379\r\n"
        );
        assert_eq!(
            proxy_line(addr("[2001:db8::7]:51000"), addr("[::1]:6379")),
            "PROXY TCP6 2001:db8::7 ::1 51000 6379\r\n"
        );
    }

    #[test]
    fn an_ipv4_client_on_a_dual_stack_socket_is_ipv4() {
        assert_eq!(
            proxy_line(
                addr("[::ffff:192.0.2.7]:51000"),
                addr("[::ffff:10.0.0.1]:6379")
            ),
            "PROXY TCP4 192.0.2.7 10.0.0.1 51000 6379\r\n"
        );
    }

    #[test]
    fn mixed_families_cannot_be_said_in_version_1() {
        // An IPv4 client reaching the proxy over an IPv6 address (or the
        // other way round): the line has one family for both, so it says
        // UNKNOWN, and the upstream uses the connection's own addresses.
        for (client, proxy) in [
            ("192.0.2.7:51000", "[2001:db8::1]:6379"),
            ("[2001:db8::7]:51000", "10.0.0.1:6379"),
        ] {
            assert_eq!(proxy_line(addr(client), addr(proxy)), "PROXY UNKNOWN\r\n");
        }
    }
}

mod proxy_block_v4 {
    use proxy_workbench::exercises::answers::ch08::proxy_block_v4;

    use super::addr;

    #[test]
    fn signature_command_family_length_addresses_ports() {
        let block = proxy_block_v4(addr("192.0.2.7:51000"), addr("10.0.0.1:6379"));
        let mut expected = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        expected.extend([0x21, 0x11, 0x00, 0x0c]);
        expected.extend([192, 0, 2, 7, 10, 0, 0, 1]);
        expected.extend([0xc7, 0x38, 0x18, 0xeb]);
        assert_eq!(block, expected);
    }
}

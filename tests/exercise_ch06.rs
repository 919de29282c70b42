//! Chapter 6's exercises. Run one against your code with
//! `cargo test --features mine --test exercise_ch06 ping_frame`.

mod ping_frame {
    use proxy_workbench::exercises::answers::ch06::{Toward, ping_frame};
    use step06_websocket::frames::Frames;

    /// The payload of `frame`, unmasked, after checking the header.
    fn payload_of(frame: &[u8], masked: bool) -> Vec<u8> {
        assert_eq!(frame[0], 0x89, "FIN and the ping opcode");
        assert_eq!(frame[1] & 0x80 != 0, masked, "the mask bit");
        let length = usize::from(frame[1] & 0x7f);
        let (key, payload) = if masked {
            (frame[2..6].to_vec(), &frame[6..])
        } else {
            (vec![0; 4], &frame[2..])
        };
        assert_eq!(payload.len(), length, "the length says what follows");
        payload
            .iter()
            .zip(key.iter().cycle())
            .map(|(b, k)| b ^ k)
            .collect()
    }

    /// A proxy may only write a whole frame: step 06's tracker must find it
    /// complete, ending exactly at its last byte.
    fn is_one_whole_frame(frame: &[u8]) -> bool {
        let mut frames = Frames::new();
        frames.advance(frame, false) == frame.len() && frames.at_boundary()
    }

    #[test]
    fn to_the_client_unmasked() {
        let frame = ping_frame(b"are you there?", Toward::Client);
        assert_eq!(payload_of(&frame, false), b"are you there?");
        assert!(is_one_whole_frame(&frame));
    }

    #[test]
    fn to_the_backend_masked_with_a_fresh_key() {
        let first = ping_frame(b"are you there?", Toward::Backend);
        assert_eq!(payload_of(&first, true), b"are you there?");
        assert!(is_one_whole_frame(&first));
        let keys: std::collections::HashSet<Vec<u8>> = (0..8)
            .map(|_| ping_frame(b"x", Toward::Backend)[2..6].to_vec())
            .collect();
        assert!(keys.len() > 1, "the mask key is random, not fixed");
    }

    #[test]
    fn a_control_frame_carries_at_most_125_bytes() {
        let frame = ping_frame(&[7; 300], Toward::Client);
        assert_eq!(payload_of(&frame, false), vec![7; 125]);
    }
}

mod frame_length {
    use proxy_workbench::exercises::answers::ch06::frame_length;

    #[test]
    fn short_frames_with_and_without_a_mask() {
        assert_eq!(frame_length(&[0x81, 5]), Some(2 + 5));
        assert_eq!(frame_length(&[0x81, 0x80 | 5]), Some(2 + 4 + 5));
        assert_eq!(frame_length(&[0x88, 0]), Some(2));
    }

    #[test]
    fn sixteen_and_sixty_four_bit_lengths() {
        assert_eq!(frame_length(&[0x82, 126, 0x01, 0x00]), Some(4 + 256));
        assert_eq!(
            frame_length(&[0x82, 0x80 | 126, 0xff, 0xff]),
            Some(4 + 4 + 65_535)
        );
        let mut long = vec![0x82, 127];
        long.extend(1_000_000u64.to_be_bytes());
        assert_eq!(frame_length(&long), Some(10 + 1_000_000));
    }

    #[test]
    fn too_few_bytes_to_tell() {
        assert_eq!(frame_length(&[]), None);
        assert_eq!(frame_length(&[0x81]), None);
        assert_eq!(frame_length(&[0x82, 126, 0x01]), None);
        assert_eq!(frame_length(&[0x82, 127, 0, 0, 0]), None);
    }
}

package dev.syncbn.data;

import dev.syncbn.nn.Backend;
import dev.syncbn.nn.Buf;
import org.nd4j.linalg.api.buffer.DataType;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The augmentation of --augment: shifts of up to 4 pixels with a black border and mirroring, drawn from (seed, epoch, position) alone. */
class AugmentTest {
    static final int H = 28, W = 28;

    @BeforeAll
    static void backend() {
        Backend.init();
    }

    /** One image, black but for one pixel of value 255 at (y, x) and 1 at (0, 0); label 7. */
    static Dataset onePixel(int y, int x) {
        byte[] pixels = new byte[H * W];
        pixels[y * W + x] = (byte) 255;
        pixels[0] = 1;
        return new Dataset(pixels, new byte[] {7}, 1, H, W, 10);
    }

    static float[] augmented(Dataset d, long seed, int epoch, long position) {
        Buf input = Buf.zeros(DataType.FLOAT, H * W);
        int[] labels = new int[1];
        Augment.fill(d, new int[] {0}, 0, 1, input, labels, seed, epoch, position, 1);
        assertEquals(7, labels[0]);
        float[] out = new float[H * W];
        for (int i = 0; i < out.length; i++) out[i] = (float) input.get(i);
        return out;
    }

    @Test
    void everyShiftAndMirrorOccursAndMovesThePixelThere() {
        int y0 = 12, x0 = 9;
        Dataset d = onePixel(y0, x0);
        Set<String> seen = new HashSet<>();
        for (long p = 0; p < 3000; p++) {
            float[] out = augmented(d, 5, 1, p);
            int lit = -1, count = 0;
            for (int i = 0; i < out.length; i++) {
                if (out[i] == 1f) {
                    lit = i;
                    count++;
                }
            }
            assertEquals(1, count, "the bright pixel stays inside at a shift of at most 4 (position " + p + ")");
            int y = lit / W, x = lit % W, dy = y0 - y;
            // unmirrored: x = x0 - dx; mirrored: x = W - 1 - (x0 - dx)
            int dxPlain = x0 - x, dxMirrored = x0 - (W - 1 - x);
            assertTrue(Math.abs(dy) <= Augment.PAD, "dy " + dy);
            boolean mirrored = Math.abs(dxPlain) > Augment.PAD;
            int dx = mirrored ? dxMirrored : dxPlain;
            assertTrue(Math.abs(dx) <= Augment.PAD, "dx " + dx);
            seen.add(dy + "," + dx + "," + mirrored);
            for (int i = 0; i < out.length; i++) assertTrue(out[i] == 0f || out[i] == 1f || Math.abs(out[i] - 1 / 255f) < 1e-7, "only the image's values");
        }
        assertEquals(2 * 9 * 9, seen.size(), "every shift of -4..4 both ways, mirrored or not");
    }

    @Test
    void theDrawDependsOnlyOnSeedEpochAndPosition() {
        Dataset d = onePixel(14, 5);
        assertArrayEquals(augmented(d, 1, 2, 77), augmented(d, 1, 2, 77));
        int differ = 0;
        for (long p = 0; p < 50; p++) {
            if (!Arrays.equals(augmented(d, 1, 2, p), augmented(d, 1, 3, p))) differ++;
        }
        assertTrue(differ > 40, "another epoch draws anew: " + differ + " of 50 differ");
        assertFalse(Arrays.equals(augmented(d, 1, 2, 77), augmented(d, 2, 2, 77)) && Arrays.equals(augmented(d, 1, 2, 78), augmented(d, 2, 2, 78)),
                "another seed draws anew");
    }
}

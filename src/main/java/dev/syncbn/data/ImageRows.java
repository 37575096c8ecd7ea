package dev.syncbn.data;

import java.util.List;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.ml.linalg.VectorUDT;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.NumericType;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import scala.collection.Seq;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Decoding of DataFrame rows into this program's samples: a features value (an ML Vector or an array of
 * float or double of C*H*W values in [0, 1], row-major as the IDX reader produces them, or binary of
 * C*H*W bytes) becomes C*H*W pixel bytes, and a numeric label a class number. Samples are kept as 8-bit
 * pixels, as everywhere in this program: a value v in [0, 1] becomes round(255 v), which images from 8-bit
 * sources (v = byte / 255) survive exactly. Every refusal names the column.
 */
public final class ImageRows {
    /** The largest class count: labels are stored as bytes. */
    public static final int MAX_CLASSES = 256;

    private ImageRows() {}

    /** The kinds of features column this decoder reads. */
    public enum Kind { VECTOR, FLOATS, DOUBLES, BYTES }

    /** The kind of a features column, or an error naming it and the types it could be. */
    public static Kind kindOf(StructType schema, String column) {
        DataType t = field(schema, column).dataType();
        if (t instanceof VectorUDT) return Kind.VECTOR;
        if (t.equals(DataTypes.BinaryType)) return Kind.BYTES;
        if (t instanceof ArrayType a && a.elementType().equals(DataTypes.FloatType)) return Kind.FLOATS;
        if (t instanceof ArrayType a && a.elementType().equals(DataTypes.DoubleType)) return Kind.DOUBLES;
        throw new IllegalArgumentException("features column '" + column + "' has type " + t.simpleString()
                + "; it must be a vector, array<float>, array<double> (values in [0, 1]) or binary (one byte per value)");
    }

    public static StructField field(StructType schema, String column) {
        for (StructField f : schema.fields()) if (f.name().equals(column)) return f;
        throw new IllegalArgumentException("no column '" + column + "' (the columns are " + String.join(", ", schema.fieldNames()) + ")");
    }

    /** Refuses a label column that is not numeric. */
    public static void checkLabelType(StructType schema, String column) {
        DataType t = field(schema, column).dataType();
        if (!(t instanceof NumericType)) {
            throw new IllegalArgumentException("label column '" + column + "' has type " + t.simpleString() + "; it must be numeric (class numbers 0..K-1)");
        }
    }

    /**
     * Writes one features value into pixels[offset .. offset+size); returns null, or what is wrong with it
     * (the caller names the row), so that a check pass can report the first bad row instead of failing a task.
     */
    public static String decode(Object value, Kind kind, int size, byte[] pixels, int offset) {
        if (value == null) return "is null";
        switch (kind) {
            case BYTES -> {
                byte[] b = (byte[]) value;
                if (b.length != size) return "has " + b.length + " bytes, the image shape needs " + size;
                System.arraycopy(b, 0, pixels, offset, size);
                return null;
            }
            case VECTOR -> {
                Vector v = (Vector) value;
                if (v.size() != size) return "has " + v.size() + " values, the image shape needs " + size;
                for (int i = 0; i < size; i++) {
                    String bad = pixel(v.apply(i), pixels, offset + i);
                    if (bad != null) return bad + " at position " + i;
                }
                return null;
            }
            default -> {
                List<?> list = value instanceof List<?> l ? l : CollectionConverters.asJava((Seq<?>) value);
                if (list.size() != size) return "has " + list.size() + " values, the image shape needs " + size;
                for (int i = 0; i < size; i++) {
                    Object x = list.get(i);
                    if (x == null) return "has a null at position " + i;
                    String bad = pixel(((Number) x).doubleValue(), pixels, offset + i);
                    if (bad != null) return bad + " at position " + i;
                }
                return null;
            }
        }
    }

    private static String pixel(double v, byte[] pixels, int at) {
        if (!(v >= 0 && v <= 1)) return "has the value " + v + " (outside [0, 1])";
        pixels[at] = (byte) Math.round(v * 255);
        return null;
    }

    /** The class number of a label value, or -1 if it is null, not whole, or outside 0..MAX_CLASSES-1. */
    public static int label(Object value) {
        if (!(value instanceof Number n)) return -1;
        double d = n.doubleValue();
        if (d != Math.rint(d) || d < 0 || d >= MAX_CLASSES) return -1;
        return (int) d;
    }
}

// pgjdbc (Debian's libpostgresql-jdbc-java) against o11ydb, run as a
// single-file program:
//   java -cp /usr/share/java/postgresql.jar JdbcClient.java HOST PORT
// Checks prepared statements with parameters of each type (pgjdbc switches
// to server-side prepared statements with binary transfer after
// prepareThreshold uses, so each runs in text and then binary), ResultSet
// getters, DatabaseMetaData.getTables/getColumns (what JDBC tools such as
// DBeaver call) and SQLException.getSQLState. Exits 1 if any check fails.

import java.math.BigDecimal;
import java.sql.*;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.*;

public class JdbcClient {
    static int passed = 0;
    static int failed = 0;

    interface Check {
        void run() throws Exception;
    }

    static void check(String name, Check body) {
        try {
            body.run();
            passed++;
            System.out.println("ok   " + name);
        } catch (Throwable t) {
            failed++;
            System.out.println("FAIL " + name + ": " + t);
        }
    }

    static void expect(Object expected, Object actual, String what) {
        boolean same = expected instanceof byte[] && actual instanceof byte[]
                ? Arrays.equals((byte[]) expected, (byte[]) actual)
                : Objects.equals(expected, actual);
        if (!same) {
            throw new AssertionError(what + ": expected <" + expected + "> but got <" + actual + ">");
        }
    }

    interface Binder {
        void bind(PreparedStatement ps, int index) throws SQLException;
    }

    interface Getter {
        Object get(ResultSet rs) throws SQLException;
    }

    static void roundTrip(Connection c, String type, Binder binder, Getter getter, Object expected) throws Exception {
        try (PreparedStatement ps = c.prepareStatement(
                "SELECT ?::" + type + " AS v, ?::" + type + " IS NULL AS n")) {
            // Past prepareThreshold (5) pgjdbc uses a named server statement and binary results.
            for (int i = 0; i < 7; i++) {
                binder.bind(ps, 1);
                ps.setNull(2, Types.NULL);
                try (ResultSet rs = ps.executeQuery()) {
                    expect(true, rs.next(), type + " has a row");
                    expect(expected, getter.get(rs), type + " value (execution " + (i + 1) + ")");
                    expect(true, rs.getBoolean("n"), type + " NULL parameter");
                    expect(false, rs.next(), type + " has one row");
                }
            }
        }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/o11ydb";
        Properties props = new Properties();
        props.setProperty("user", "o11ydb");
        try (Connection c = DriverManager.getConnection(url, props)) {
            check("server version", () -> {
                DatabaseMetaData md = c.getMetaData();
                expect("PostgreSQL", md.getDatabaseProductName(), "product");
                expect(16, md.getDatabaseMajorVersion(), "major version");
            });
            check("int2", () -> roundTrip(c, "int2", (ps, i) -> ps.setShort(i, (short) 7), rs -> rs.getShort("v"), (short) 7));
            check("int4", () -> roundTrip(c, "int4", (ps, i) -> ps.setInt(i, -70000), rs -> rs.getInt("v"), -70000));
            check("int8", () -> roundTrip(c, "int8", (ps, i) -> ps.setLong(i, 1L << 40), rs -> rs.getLong("v"), 1L << 40));
            check("float4", () -> roundTrip(c, "float4", (ps, i) -> ps.setFloat(i, 1.5f), rs -> rs.getFloat("v"), 1.5f));
            check("float8", () -> roundTrip(c, "float8", (ps, i) -> ps.setDouble(i, 0.1), rs -> rs.getDouble("v"), 0.1));
            check("numeric", () -> roundTrip(c, "numeric", (ps, i) -> ps.setBigDecimal(i, new BigDecimal("1.25")),
                    rs -> rs.getBigDecimal("v").compareTo(new BigDecimal("1.25")) == 0, true));
            check("text", () -> roundTrip(c, "text", (ps, i) -> ps.setString(i, "héllo ✓"), rs -> rs.getString("v"), "héllo ✓"));
            check("bool", () -> roundTrip(c, "bool", (ps, i) -> ps.setBoolean(i, true), rs -> rs.getBoolean("v"), true));
            OffsetDateTime ts = OffsetDateTime.of(2026, 1, 1, 12, 0, 0, 250_000_000, ZoneOffset.UTC);
            check("timestamptz", () -> roundTrip(c, "timestamptz", (ps, i) -> ps.setObject(i, ts),
                    rs -> rs.getObject("v", OffsetDateTime.class).toInstant(), ts.toInstant()));
            LocalDateTime local = LocalDateTime.of(2026, 1, 1, 1, 2, 3);
            check("timestamp", () -> roundTrip(c, "timestamp", (ps, i) -> ps.setObject(i, local),
                    rs -> rs.getObject("v", LocalDateTime.class), local));
            LocalDate day = LocalDate.of(2026, 1, 2);
            check("date", () -> roundTrip(c, "date", (ps, i) -> ps.setObject(i, day),
                    rs -> rs.getObject("v", LocalDate.class), day));
            check("interval", () -> roundTrip(c, "interval", (ps, i) -> ps.setObject(i, new org.postgresql.util.PGInterval(0, 0, 1, 0, 0, 5)),
                    rs -> {
                        org.postgresql.util.PGInterval v = (org.postgresql.util.PGInterval) rs.getObject("v");
                        return v.getDays() + "d" + (int) v.getSeconds() + "s";
                    }, "1d5s"));
            check("jsonb", () -> roundTrip(c, "jsonb", (ps, i) -> ps.setString(i, "{\"a\": [1, 2]}"),
                    rs -> rs.getString("v").replace(" ", ""), "{\"a\":[1,2]}"));
            check("json", () -> roundTrip(c, "json", (ps, i) -> ps.setString(i, "{\"b\": null}"),
                    rs -> rs.getString("v").replace(" ", ""), "{\"b\":null}"));
            check("bytea", () -> roundTrip(c, "bytea", (ps, i) -> ps.setBytes(i, new byte[] {0, 1, (byte) 255}),
                    rs -> rs.getBytes("v"), new byte[] {0, 1, (byte) 255}));
            check("int8[]", () -> roundTrip(c, "int8[]", (ps, i) -> ps.setArray(i, c.createArrayOf("int8", new Long[] {1L, 2L, 3L})),
                    rs -> Arrays.asList((Long[]) rs.getArray("v").getArray()), Arrays.asList(1L, 2L, 3L)));
            check("float8[]", () -> roundTrip(c, "float8[]", (ps, i) -> ps.setArray(i, c.createArrayOf("float8", new Double[] {1.5, -2.0})),
                    rs -> Arrays.asList((Double[]) rs.getArray("v").getArray()), Arrays.asList(1.5, -2.0)));
            check("text[]", () -> roundTrip(c, "text[]", (ps, i) -> ps.setArray(i, c.createArrayOf("text", new String[] {"a", "b c"})),
                    rs -> Arrays.asList((String[]) rs.getArray("v").getArray()), Arrays.asList("a", "b c")));

            check("insert with parameters and read back", () -> {
                try (PreparedStatement ps = c.prepareStatement(
                        "INSERT INTO logs (timestamp, labels, line, severity) VALUES (?, map(['job'], ['jdbc']), ?, ?)")) {
                    ps.setObject(1, ts);
                    ps.setString(2, "jdbc line");
                    ps.setString(3, "error");
                    expect(1, ps.executeUpdate(), "rows inserted");
                }
                try (Statement s = c.createStatement();
                     ResultSet rs = s.executeQuery("SELECT timestamp, labels, line, severity, stream_id FROM logs WHERE line = 'jdbc line'")) {
                    expect(true, rs.next(), "row back");
                    expect(ts.toInstant(), rs.getObject("timestamp", OffsetDateTime.class).toInstant(), "timestamp");
                    expect("{\"job\":\"jdbc\"}", rs.getString("labels").replace(" ", ""), "labels as jsonb");
                    expect("jsonb", rs.getMetaData().getColumnTypeName(2), "labels type");
                    expect("error", rs.getString("severity"), "severity");
                    expect(Types.BIGINT, rs.getMetaData().getColumnType(5), "stream_id type");
                }
            });

            check("DatabaseMetaData.getTables", () -> {
                Map<String, String> found = new TreeMap<>();
                try (ResultSet rs = c.getMetaData().getTables(null, "public", "%", new String[] {"TABLE", "VIEW"})) {
                    while (rs.next()) {
                        found.put(rs.getString("TABLE_NAME"), rs.getString("TABLE_TYPE"));
                    }
                }
                expect("TABLE", found.get("logs"), "logs");
                expect("TABLE", found.get("samples"), "samples");
                expect("TABLE", found.get("spans"), "spans");
                expect("VIEW", found.get("traces"), "traces");
            });

            check("DatabaseMetaData.getColumns", () -> {
                Map<String, String> columns = new LinkedHashMap<>();
                try (ResultSet rs = c.getMetaData().getColumns(null, "public", "samples", "%")) {
                    while (rs.next()) {
                        columns.put(rs.getString("COLUMN_NAME"), rs.getString("TYPE_NAME") + "/" + rs.getInt("DATA_TYPE") + "/" + rs.getString("IS_NULLABLE"));
                    }
                }
                expect("timestamptz/" + Types.TIMESTAMP + "/NO", columns.get("timestamp"), "timestamp column");
                expect("text/" + Types.VARCHAR + "/NO", columns.get("metric"), "metric column");
                expect("float8/" + Types.DOUBLE + "/NO", columns.get("value"), "value column");
            });

            check("SQLException carries the SQLSTATE and the connection survives", () -> {
                try (Statement s = c.createStatement()) {
                    s.executeQuery("SELECT nope FROM logs");
                    throw new AssertionError("no error");
                } catch (SQLException e) {
                    expect("42703", e.getSQLState(), "undefined column");
                }
                try (PreparedStatement ps = c.prepareStatement("SELECT * FROM nope WHERE x = ?")) {
                    ps.setInt(1, 1);
                    ps.executeQuery();
                    throw new AssertionError("no error");
                } catch (SQLException e) {
                    expect("42P01", e.getSQLState(), "undefined table");
                }
                try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT 40 + 2")) {
                    rs.next();
                    expect(42, rs.getInt(1), "query after errors");
                }
            });
        }
        System.out.println(passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}

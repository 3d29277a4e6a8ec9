"""The term timetable: the calendar of teaching days, lesson planning and generation."""
